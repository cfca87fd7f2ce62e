package envoy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// tlsFiles are names only: Render does not read them.
var tlsFiles = &TLS{CAFile: "/etc/keygate/cp/ca.crt", CertFile: "/etc/keygate/cp/envoy.crt", KeyFile: "/etc/keygate/cp/envoy.key"}

func TestRenderErrors(t *testing.T) {
	good := Params{NodeID: "edge-0", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002", TLS: tlsFiles}
	tests := map[string]struct {
		edit func(*Params)
		want string
	}{
		"no node id":         {func(p *Params) { p.NodeID = "" }, "NodeID is empty"},
		"admin without port": {func(p *Params) { p.AdminAddress = "127.0.0.1" }, `AdminAddress: "127.0.0.1" is not host:port`},
		"xds bad port":       {func(p *Params) { p.XDSAddress = "127.0.0.1:http" }, `XDSAddress: "127.0.0.1:http": port "http" is not a number`},
		"extauthz port zero": {func(p *Params) { p.ExtAuthzAddress = "127.0.0.1:0" }, `ExtAuthzAddress: "127.0.0.1:0": port "0"`},
		"xds without host":   {func(p *Params) { p.XDSAddress = ":18000" }, `XDSAddress: ":18000" has no host`},
		"no TLS":             {func(p *Params) { p.TLS = nil }, "TLS is required"},
		"TLS without a key":  {func(p *Params) { p.TLS = &TLS{CAFile: "ca.crt", CertFile: "envoy.crt"} }, "TLS needs CAFile, CertFile and KeyFile"},
		"TLS and plaintext":  {func(p *Params) { p.InsecurePlaintext = true }, "choose one"},
		"plaintext to a pod": {func(p *Params) { p.TLS, p.InsecurePlaintext, p.XDSAddress = nil, true, "10.0.0.7:18000" }, `InsecurePlaintext with XDSAddress "10.0.0.7": plaintext gRPC is allowed to a loopback address only`},
		"plaintext to a name": {func(p *Params) {
			p.TLS, p.InsecurePlaintext, p.ExtAuthzAddress = nil, true, "extauthz.keygate.svc:18002"
		}, `InsecurePlaintext with ExtAuthzAddress "extauthz.keygate.svc"`},
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
			Name            string           `json:"name"`
			Type            string           `json:"type"`
			TransportSocket *transportSocket `json:"transport_socket"`
			LoadAssignment  struct {
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

// transportSocket is the part of a cluster's UpstreamTlsContext the tests look at.
type transportSocket struct {
	TypedConfig struct {
		SNI              string `json:"sni"`
		CommonTLSContext struct {
			ALPN            []string `json:"alpn_protocols"`
			TLSCertificates []struct {
				CertificateChain struct{ Filename string } `json:"certificate_chain"`
				PrivateKey       struct{ Filename string } `json:"private_key"`
			} `json:"tls_certificates"`
			ValidationContext struct {
				TrustedCA struct{ Filename string } `json:"trusted_ca"`
				SANs      []struct {
					SANType string `json:"san_type"`
					Matcher struct{ Exact string }
				} `json:"match_typed_subject_alt_names"`
			} `json:"validation_context"`
		} `json:"common_tls_context"`
	} `json:"typed_config"`
}

type socketAddress struct {
	SocketAddress struct {
		Address   string `json:"address"`
		PortValue int    `json:"port_value"`
	} `json:"socket_address"`
}

func TestRender(t *testing.T) {
	out, err := Render(Params{NodeID: `edge "0"`, AdminAddress: "127.0.0.1:9901", XDSAddress: "xds.keygate.svc:18000", ExtAuthzAddress: "[::1]:18002", TLS: tlsFiles})
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
		sni       string
		san       string // type:value
	}{
		"xds":      {"STRICT_DNS", "xds.keygate.svc", 18000, "xds.keygate.svc", "DNS:xds.keygate.svc"},
		"extauthz": {"STATIC", "::1", 18002, "", "IP_ADDRESS:::1"},
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
		checkTLS(t, c.Name, c.TransportSocket, w.sni, w.san)
	}
}

// checkTLS checks that a cluster speaks mutual TLS with the control plane's files, and verifies
// the server as san (type:value).
func checkTLS(t *testing.T, cluster string, ts *transportSocket, sni, san string) {
	t.Helper()
	if ts == nil {
		t.Errorf("cluster %s: no transport_socket: plaintext, want mutual TLS", cluster)
		return
	}
	tc := ts.TypedConfig
	ctx := tc.CommonTLSContext
	if len(ctx.TLSCertificates) != 1 || ctx.TLSCertificates[0].CertificateChain.Filename != tlsFiles.CertFile || ctx.TLSCertificates[0].PrivateKey.Filename != tlsFiles.KeyFile {
		t.Errorf("cluster %s: client certificates %+v, want %s and %s", cluster, ctx.TLSCertificates, tlsFiles.CertFile, tlsFiles.KeyFile)
	}
	if ctx.ValidationContext.TrustedCA.Filename != tlsFiles.CAFile {
		t.Errorf("cluster %s: trusted CA %q, want %q", cluster, ctx.ValidationContext.TrustedCA.Filename, tlsFiles.CAFile)
	}
	sans := ctx.ValidationContext.SANs
	if len(sans) != 1 || sans[0].SANType+":"+sans[0].Matcher.Exact != san {
		t.Errorf("cluster %s: SAN matchers %+v, want exactly %s", cluster, sans, san)
	}
	if tc.SNI != sni || len(ctx.ALPN) != 1 || ctx.ALPN[0] != "h2" {
		t.Errorf("cluster %s: SNI %q ALPN %v, want %q and [h2]", cluster, tc.SNI, ctx.ALPN, sni)
	}
}

func TestRenderPlaintextOnLoopback(t *testing.T) {
	out, err := Render(Params{NodeID: "bench", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "localhost:18002", InsecurePlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrap
	if err := yaml.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.StaticResources.Clusters {
		if c.TransportSocket != nil {
			t.Errorf("cluster %s has a transport socket with InsecurePlaintext", c.Name)
		}
	}
}

// TestValidateWithEnvoy asks the real Envoy whether it accepts the rendered bootstrap.
func TestValidateWithEnvoy(t *testing.T) {
	bin, err := toolbin.Path("envoy")
	if err != nil {
		t.Fatal(err)
	}
	// Envoy reads the certificate files when it validates.
	cp, err := pki.WriteControlPlane(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	files := &TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile}
	tests := map[string]Params{
		"loopback ips": {NodeID: "edge-0", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002", TLS: files},
		"dns names":    {NodeID: "edge-1", AdminAddress: "127.0.0.1:9901", XDSAddress: "xds.keygate.svc.cluster.local:18000", ExtAuthzAddress: "localhost:18002", TLS: files},
		"ipv6":         {NodeID: "edge-2", AdminAddress: "[::1]:9901", XDSAddress: "[::1]:18000", ExtAuthzAddress: "[::1]:18002", TLS: files},
		"plaintext":    {NodeID: "edge-3", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002", InsecurePlaintext: true},
		"replicas":     {NodeID: "edge-4", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002", ExtAuthzReplicaPorts: []uint16{18004}, TLS: files},
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

// The overload manager protects the heap it is given, or DefaultMaxHeapBytes.
func TestRenderHeapLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		set, want uint64
	}{
		"default": {0, DefaultMaxHeapBytes},
		"given":   {1 << 30, 1 << 30},
	} {
		out, err := Render(Params{NodeID: "edge", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002", TLS: tlsFiles, MaxHeapBytes: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			OverloadManager struct {
				ResourceMonitors []struct {
					Name        string `json:"name"`
					TypedConfig struct {
						MaxHeapSizeBytes uint64 `json:"max_heap_size_bytes"`
					} `json:"typed_config"`
				} `json:"resource_monitors"`
				Actions []struct {
					Name string `json:"name"`
				} `json:"actions"`
			} `json:"overload_manager"`
		}
		if err := yaml.Unmarshal(out, &b); err != nil {
			t.Fatal(err)
		}
		var heap uint64
		for _, m := range b.OverloadManager.ResourceMonitors {
			if m.Name == "envoy.resource_monitors.fixed_heap" {
				heap = m.TypedConfig.MaxHeapSizeBytes
			}
		}
		var actions []string
		for _, a := range b.OverloadManager.Actions {
			actions = append(actions, a.Name)
		}
		if heap != tc.want || strings.Join(actions, ",") != "envoy.overload_actions.shrink_heap,envoy.overload_actions.stop_accepting_requests" {
			t.Errorf("%s: heap %d (want %d), actions %v", name, heap, tc.want, actions)
		}
	}
}

// Replicas on one host are one endpoint each of the extauthz cluster, which ejects a replica
// that fails and health-checks them all over gRPC (a dead replica must leave at once, not when
// DNS forgets it: docs/reliability.md).
func TestRenderExtAuthzReplicas(t *testing.T) {
	out, err := Render(Params{NodeID: "edge", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002",
		ExtAuthzReplicaPorts: []uint16{18004, 18006}, TLS: tlsFiles})
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		StaticResources struct {
			Clusters []struct {
				Name           string `json:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LBEndpoints []struct {
							Endpoint struct {
								Address socketAddress `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
				OutlierDetection map[string]any   `json:"outlier_detection"`
				HealthChecks     []map[string]any `json:"health_checks"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := yaml.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	c := b.StaticResources.Clusters[1]
	var got []string
	for _, e := range c.LoadAssignment.Endpoints[0].LBEndpoints {
		a := e.Endpoint.Address.SocketAddress
		got = append(got, a.Address+":"+strconv.Itoa(a.PortValue))
	}
	if want := "127.0.0.1:18002 127.0.0.1:18004 127.0.0.1:18006"; c.Name != "extauthz" || strings.Join(got, " ") != want {
		t.Errorf("cluster %s endpoints %v, want extauthz %s", c.Name, got, want)
	}
	if c.OutlierDetection["consecutive_5xx"] == nil || len(c.HealthChecks) != 1 || c.HealthChecks[0]["grpc_health_check"] == nil {
		t.Errorf("extauthz outlier detection %v, health checks %v: want consecutive_5xx and one gRPC health check", c.OutlierDetection, c.HealthChecks)
	}
	if _, err := Render(Params{NodeID: "edge", AdminAddress: "127.0.0.1:9901", XDSAddress: "127.0.0.1:18000", ExtAuthzAddress: "127.0.0.1:18002",
		ExtAuthzReplicaPorts: []uint16{0}, TLS: tlsFiles}); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("replica port 0: error %v, want one naming port 0", err)
	}
}
