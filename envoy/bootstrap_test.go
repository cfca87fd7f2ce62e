package envoy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

func TestRenderErrors(t *testing.T) {
	good := Params{NodeID: "edge-0", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002"}
	tests := map[string]struct {
		edit func(*Params)
		want string
	}{
		"no node id":         {func(p *Params) { p.NodeID = "" }, "NodeID is empty"},
		"admin without port": {func(p *Params) { p.AdminAddress = "127.0.0.1" }, `AdminAddress: "127.0.0.1" is not host:port`},
		"xds bad port":       {func(p *Params) { p.XDSAddress = "127.0.0.1:http" }, `XDSAddress: "127.0.0.1:http": port "http" is not a number`},
		"extauthz port zero": {func(p *Params) { p.ExtAuthzAddress = "127.0.0.1:0" }, `ExtAuthzAddress: "127.0.0.1:0": port "0"`},
		"xds without host":   {func(p *Params) { p.XDSAddress = ":18000" }, `XDSAddress: ":18000" has no host`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := good
			tc.edit(&p)
			_, err := Render(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// bootstrap is the part of Envoy's bootstrap the tests look at.
type bootstrap struct {
	Node struct {
		ID string `json:"id"`
	} `json:"node"`
	Admin struct {
		Address socketAddress `json:"address"`
	} `json:"admin"`
	DynamicResources struct {
		ADSConfig struct {
			APIType             string `json:"api_type"`
			TransportAPIVersion string `json:"transport_api_version"`
		} `json:"ads_config"`
		CDSConfig map[string]any `json:"cds_config"`
		LDSConfig map[string]any `json:"lds_config"`
	} `json:"dynamic_resources"`
	StaticResources struct {
		Clusters []struct {
			Name           string `json:"name"`
			Type           string `json:"type"`
			LoadAssignment struct {
				Endpoints []struct {
					LBEndpoints []struct {
						Endpoint struct {
							Address socketAddress `json:"address"`
						} `json:"endpoint"`
					} `json:"lb_endpoints"`
				} `json:"endpoints"`
			} `json:"load_assignment"`
		} `json:"clusters"`
	} `json:"static_resources"`
}

type socketAddress struct {
	SocketAddress struct {
		Address   string `json:"address"`
		PortValue int    `json:"port_value"`
	} `json:"socket_address"`
}

func TestRender(t *testing.T) {
	out, err := Render(Params{NodeID: `edge "0"`, AdminAddress: "127.0.0.1:9901", XDSAddress: "xds.keygate.svc:18000", ExtAuthzAddress: "[::1]:18002"})
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrap
	if err := yaml.Unmarshal(out, &b); err != nil {
		t.Fatalf("rendered bootstrap is not YAML: %v\n%s", err, out)
	}
	if b.Node.ID != `edge "0"` {
		t.Errorf("node id %q", b.Node.ID)
	}
	if a := b.Admin.Address.SocketAddress; a.Address != "127.0.0.1" || a.PortValue != 9901 {
		t.Errorf("admin on %s:%d", a.Address, a.PortValue)
	}
	ads := b.DynamicResources.ADSConfig
	if ads.APIType != "DELTA_GRPC" || ads.TransportAPIVersion != "V3" {
		t.Errorf("ads_config %+v, want DELTA_GRPC V3", ads)
	}
	for name, src := range map[string]map[string]any{"cds": b.DynamicResources.CDSConfig, "lds": b.DynamicResources.LDSConfig} {
		if _, ok := src["ads"]; !ok || src["resource_api_version"] != "V3" {
			t.Errorf("%s_config %v, want ads with V3", name, src)
		}
	}
	want := map[string]struct {
		typ, host string
		port      int
	}{
		"xds":      {"STRICT_DNS", "xds.keygate.svc", 18000},
		"extauthz": {"STATIC", "::1", 18002},
	}
	if len(b.StaticResources.Clusters) != len(want) {
		t.Fatalf("static clusters %+v, want xds and extauthz", b.StaticResources.Clusters)
	}
	for _, c := range b.StaticResources.Clusters {
		w, ok := want[c.Name]
		a := c.LoadAssignment.Endpoints[0].LBEndpoints[0].Endpoint.Address.SocketAddress
		if !ok || c.Type != w.typ || a.Address != w.host || a.PortValue != w.port {
			t.Errorf("cluster %s: %s %s:%d, want %+v", c.Name, c.Type, a.Address, a.PortValue, w)
		}
	}
}

// TestValidateWithEnvoy asks the real Envoy whether it accepts the rendered bootstrap.
func TestValidateWithEnvoy(t *testing.T) {
	bin, err := toolbin.Path("envoy")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]Params{
		"loopback ips": {NodeID: "edge-0", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002"},
		"dns names":    {NodeID: "edge-1", AdminAddress: "127.0.0.1:9901", XDSAddress: "xds.keygate.svc.cluster.local:18000", ExtAuthzAddress: "localhost:18002"},
		"ipv6":         {NodeID: "edge-2", AdminAddress: "[::1]:9901", XDSAddress: "[::1]:18000", ExtAuthzAddress: "[::1]:18002"},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "envoy.yaml")
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path, "--disable-hot-restart", "--log-level", "warn")
			if log, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s\n--- bootstrap ---\n%s", err, log, out)
			}
		})
	}
}
