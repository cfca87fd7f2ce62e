package manifests_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// generated are the kustomize files rendered from the chart: path → helm template arguments.
var generated = map[string][]string{
	"kustomize/base/keygate.yaml":                     nil,
	"kustomize/components/monitoring/monitoring.yaml": {"--show-only", "templates/monitoring.yaml", "--set", monitoringOn},
}

const generatedHeader = "# Generated from manifests/helm/keygate by `go test ./manifests -run Kustomize -update`; do not edit.\n"

// TestKustomizeIsTheChart regenerates the kustomize files from the chart and fails on a
// difference (-update rewrites them), so kustomize users get what Helm users get.
func TestKustomizeIsTheChart(t *testing.T) {
	for path, args := range generated {
		t.Run(path, func(t *testing.T) {
			out := run(t, "helm", append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
			want := append([]byte(generatedHeader), out...)
			if *update {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s is not what the chart renders (%v): run go test ./manifests -run Kustomize -update and commit it", path, err)
			}
		})
	}
}

// TestKustomizeExampleIsAccepted builds the example overlay (base, monitoring component, a
// patch) with kubectl's kustomize and dry-runs it on the real API server.
func TestKustomizeExampleIsAccepted(t *testing.T) {
	kubeconfig := prepareCluster(t)
	out := run(t, "kubectl", "kustomize", filepath.Join("kustomize", "example"))
	if !strings.Contains(string(out), "redis-0.redis.svc:6379") {
		t.Fatal("the example's Redis patch did not apply")
	}
	file := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	dryRun(t, kubeconfig, file)
}
