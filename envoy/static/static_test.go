package static

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

var update = flag.Bool("update", false, "rewrite example.yaml from the example's parameters")

// example is the configuration example.yaml holds: an edge in Kubernetes, its targets reached by
// DNS names, files mounted from Secrets.
func example() Params {
	upstream := TLS{CAFile: "/etc/keygate/upstreams/ca.crt", CertFile: "/etc/keygate/upstreams/edge.crt", KeyFile: "/etc/keygate/upstreams/edge.key"}
	return Params{
		AdminAddress:    "127.0.0.1:9901",
		ListenAddress:   "0.0.0.0:8443",
		ServingCertFile: "/etc/keygate/serving/tls.crt", ServingKeyFile: "/etc/keygate/serving/tls.key",
		ExtAuthzAddress: "extauthz.keygate.svc.cluster.local:19000",
		ExtAuthzTLS:     TLS{CAFile: "/etc/keygate/grpc/ca.crt", CertFile: "/etc/keygate/grpc/envoy.crt", KeyFile: "/etc/keygate/grpc/envoy.key"},
		Targets: []Target{
			{Ref: edgepath.Ref{Kind: edgepath.KindManagement}, URL: "https://keystore.keygate.svc.cluster.local:8443", TLS: upstream},
			{Ref: edgepath.Ref{Kind: edgepath.KindAuth}, URL: "https://keystore.keygate.svc.cluster.local:8444", TLS: upstream},
			{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, URL: "https://demo-api.example.com:6443", TLS: upstream},
			{Ref: edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}, URL: "http://grafana.monitoring.svc.cluster.local:3000"},
			{Ref: edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1"},
				URL: "https://vc1.vcluster-demo.svc.cluster.local:443", TLS: upstream},
		},
	}
}

// example.yaml is what Render gives for example(): regenerate it with -update.
func TestExampleIsRendered(t *testing.T) {
	out, err := Render(example())
	if err != nil {
		t.Fatal(err)
	}
	header := []byte("# Rendered from edge.yaml by `go test ./envoy/static -update` (see static_test.go's example).\n" +
		"# A static edge in Kubernetes: copy it, then add or remove targets (README.md).\n")
	out = append(header, out...)
	if *update {
		if err := os.WriteFile("example.yaml", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, out) {
		t.Errorf("example.yaml is not what edge.yaml renders; run go test ./envoy/static -update")
	}
}

func TestRenderErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Params)
		want string
	}{
		"no serving certificate": {func(p *Params) { p.ServingKeyFile = "" }, "serving certificate and key files are required"},
		"extauthz without TLS":   {func(p *Params) { p.ExtAuthzTLS = TLS{} }, "extauthz needs mutual TLS"},
		"bad listen address":     {func(p *Params) { p.ListenAddress = "8443" }, `ListenAddress: "8443" is not host:port`},
		"https without a CA":     {func(p *Params) { p.Targets[2].TLS.CAFile = "" }, `cluster "demo": an https upstream needs a CAFile`},
		"half a client cert":     {func(p *Params) { p.Targets[2].TLS.KeyFile = "" }, "both or neither"},
		"bad URL":                {func(p *Params) { p.Targets[2].URL = "demo-api:6443" }, "is not http(s)://host[:port]"},
		"bad name":               {func(p *Params) { p.Targets[2].Ref.Cluster = "Demo" }, `cluster "Demo" is not valid`},
		"twice":                  {func(p *Params) { p.Targets = append(p.Targets, p.Targets[2]) }, "listed twice"},
	} {
		t.Run(name, func(t *testing.T) {
			p := example()
			tc.edit(&p)
			if _, err := Render(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The real Envoy accepts the example, with real certificate files in place of the Secrets'.
func TestValidateWithEnvoy(t *testing.T) {
	bin, err := toolbin.Path("envoy")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cp, err := pki.WriteControlPlane(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(example())
	if err != nil {
		t.Fatal(err)
	}
	// Every mounted file becomes one of the control plane's: Envoy only checks they load.
	for _, r := range []struct{ from, to string }{{"/ca.crt", cp.CAFile}, {".crt", cp.EnvoyCertFile}, {".key", cp.EnvoyKeyFile}} {
		for _, d := range []string{"/etc/keygate/upstreams", "/etc/keygate/grpc", "/etc/keygate/serving"} {
			for _, name := range []string{"", "/edge", "/envoy", "/tls"} {
				if r.from == "/ca.crt" && name != "" {
					continue
				}
				out = bytes.ReplaceAll(out, []byte(`"`+d+name+r.from+`"`), []byte(`"`+r.to+`"`))
			}
		}
	}
	if bytes.Contains(out, []byte("/etc/keygate")) {
		t.Fatalf("a file was left unreplaced:\n%s", out)
	}
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warn")
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("envoy --mode validate: %v\n%s\n--- config ---\n%s", err, log, out)
	}
}
