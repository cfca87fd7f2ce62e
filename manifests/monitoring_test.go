package manifests_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The monitoring values that turn every Prometheus Operator object on.
const monitoringOn = "monitoring.serviceMonitors.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true"

// sampleRules and sampleDashboard stand in for files/prometheus-rules.yaml (a Prometheus rules
// file, as promtool checks it) and files/dashboard.json, which the observability work writes.
const sampleRules = `groups:
  - name: keygate-sample
    rules:
      - alert: KeygateExtauthzDown
        expr: absent(up{job=~".*extauthz.*"} == 1)
        for: 2m
        labels: {severity: critical}
        annotations:
          summary: 'extauthz is down: {{ $labels.instance }}'
`

const sampleDashboard = `{"title": "keygate", "uid": "keygate-overview", "panels": []}`

// TestRulesAndDashboardFromFiles: with the chart's files present, the PrometheusRule carries
// the rules file's groups as they are (alert templates untouched) and the dashboard ConfigMap
// the JSON, and the API server accepts both (the PrometheusRule CRD validates the rules); with
// a file absent, its object is not rendered.
func TestRulesAndDashboardFromFiles(t *testing.T) {
	chart := copyChart(t)
	files := filepath.Join(chart, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "prometheus-rules.yaml"), []byte(sampleRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "dashboard.json"), []byte(sampleDashboard), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, "helm", "template", release, chart, "--namespace", namespace, "--set", monitoringOn)
	kinds := map[string]bool{}
	for _, o := range objects(t, out) {
		kinds[o.GetKind()+"/"+o.GetName()] = true
	}
	for _, want := range []string{"PrometheusRule/" + release + "-alerts", "ConfigMap/" + release + "-dashboard", "ServiceMonitor/" + release + "-envoy"} {
		if !kinds[want] {
			t.Errorf("no %s rendered", want)
		}
	}
	if !strings.Contains(string(out), "{{ $labels.instance }}") || !strings.Contains(string(out), `"uid": "keygate-overview"`) {
		t.Error("the rules' templates or the dashboard JSON did not come through unchanged")
	}
	file := filepath.Join(t.TempDir(), "monitoring.yaml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	dryRun(t, prepareCluster(t), file)

	// A PrometheusRule object in the file instead of a rules file: its spec's groups.
	wrapped := "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nspec:\n  " + strings.ReplaceAll(sampleRules, "\n", "\n  ")
	if err := os.WriteFile(filepath.Join(files, "prometheus-rules.yaml"), []byte(wrapped), 0o644); err != nil {
		t.Fatal(err)
	}
	out = run(t, "helm", "template", release, chart, "--namespace", namespace, "--set", monitoringOn, "--show-only", "templates/monitoring.yaml")
	if !strings.Contains(string(out), "alert: KeygateExtauthzDown") {
		t.Errorf("a PrometheusRule-shaped file did not give its groups:\n%s", out)
	}

	// Without the files (or in the chart as it is, if they are not written yet).
	for _, f := range []string{"prometheus-rules.yaml", "dashboard.json"} {
		if err := os.Remove(filepath.Join(files, f)); err != nil {
			t.Fatal(err)
		}
	}
	out = run(t, "helm", "template", release, chart, "--namespace", namespace, "--set", monitoringOn)
	if s := string(out); strings.Contains(s, "kind: PrometheusRule") || strings.Contains(s, release+"-dashboard") {
		t.Error("the PrometheusRule or the dashboard is rendered without its file")
	}
}

// copyChart copies the chart to a temporary directory, to add files the repository does not
// hold.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "keygate")
	err := filepath.WalkDir(chartDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(chartDir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
