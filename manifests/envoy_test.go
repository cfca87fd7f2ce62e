package manifests_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/pki"
)

// chartBootstrap is the Envoy bootstrap the chart renders with its defaults.
func chartBootstrap(t *testing.T) string {
	t.Helper()
	for _, o := range objects(t, render(t, chartDir)) {
		if o.GetKind() == "ConfigMap" && o.GetName() == release+"-envoy" {
			if b, ok, _ := unstructuredString(o.Object, "data", "bootstrap.yaml"); ok {
				return b
			}
		}
	}
	t.Fatalf("no ConfigMap %s-envoy with bootstrap.yaml", release)
	return ""
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// TestBootstrapIsPackageEnvoys: the chart's bootstrap is what package envoy renders for the same
// addresses and files (the one `make run` and the end-to-end tests run), plus the chart's health
// listener and its admin cluster: a change to envoy/bootstrap.yaml shows here.
func TestBootstrapIsPackageEnvoys(t *testing.T) {
	want, err := envoy.Render(envoy.Params{
		NodeID:          "keygate-envoy",
		AdminAddress:    "127.0.0.1:9901",
		XDSAddress:      release + "-xds." + namespace + ".svc:18000",
		ExtAuthzAddress: release + "-extauthz." + namespace + ".svc:19000",
		TLS:             &envoy.TLS{CAFile: "/etc/keygate/grpc/ca.crt", CertFile: "/etc/keygate/grpc/tls.crt", KeyFile: "/etc/keygate/grpc/tls.key"},
		MaxHeapBytes:    1717986918,
	})
	if err != nil {
		t.Fatal(err)
	}
	var pkg, chart map[string]any
	if err := yaml.Unmarshal(want, &pkg); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(chartBootstrap(t)), &chart); err != nil {
		t.Fatalf("the chart's bootstrap is not YAML: %v", err)
	}
	static := chart["static_resources"].(map[string]any)
	clusters := static["clusters"].([]any)
	if n := len(clusters); n != 3 || clusters[2].(map[string]any)["name"] != "admin" {
		t.Fatalf("the chart's bootstrap has clusters %v, want xds, extauthz and admin", clusters)
	}
	if _, ok := static["listeners"]; !ok {
		t.Fatal("the chart's bootstrap has no health listener")
	}
	// What is left must be package envoy's.
	chart["static_resources"] = map[string]any{"clusters": clusters[:2]}
	if d := cmp.Diff(pkg, chart); d != "" {
		t.Errorf("the chart's bootstrap (templates/_envoy-bootstrap.tpl) differs from package envoy's (-envoy +chart):\n%s", d)
	}
}

// TestEnvoyAcceptsTheBootstrap runs the real Envoy in validate mode on the chart's bootstrap,
// with the mounted certificate files stood in by real ones and the Deployment's flags.
func TestEnvoyAcceptsTheBootstrap(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("keygate control plane")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("keygate-envoy")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), client.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), client.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bootstrap := strings.ReplaceAll(chartBootstrap(t), "/etc/keygate/grpc/", dir+"/")
	file := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(file, []byte(bootstrap), 0o600); err != nil {
		t.Fatal(err)
	}
	out := run(t, "envoy", "--mode", "validate", "--config-path", file, "--service-node", "keygate-envoy-0", "--disable-hot-restart", "--drain-time-s", "45", "--drain-strategy", "immediate", "--log-level", "warn")
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("envoy --mode validate: %s", out)
	}
}
