package localdev

import (
	"context"
	"time"

	"github.com/keygate-dev/keygate/envoy/static"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// StaticEdge is a second Envoy in front of the same upstreams, configured from envoy/static
// instead of xds: the edge behind an Envoy that our xds does not program. It calls the
// platform's extauthz without context_extensions and serves the edge's certificate.
type StaticEdge struct {
	// URL is its HTTPS base URL; AdminURL its admin interface.
	URL, AdminURL string
	// Config is the file it runs.
	Config string
	envoy  *proc.Process
}

// Stop stops the static Envoy.
func (e *StaticEdge) Stop() { e.envoy.Stop(10 * time.Second) }

// StaticTargets are the platform's targets as envoy/static entries: the same upstreams,
// credentials and files as the targets file that xds reads.
func (p *Platform) StaticTargets() []static.Target {
	upstream := static.TLS{CAFile: p.path("pki", "platform-ca.crt"), CertFile: p.path("pki", "edge-client.crt"), KeyFile: p.path("pki", "edge-client.key")}
	var ts []static.Target
	for _, r := range p.Refs() {
		t := static.Target{Ref: r, TLS: upstream}
		switch r.Kind {
		case edgepath.KindCluster:
			t.URL = p.Clusters[r.Cluster].URL
		case edgepath.KindVirtualCluster:
			t.URL = p.VirtualCluster.URL
		case edgepath.KindGrafana:
			t.URL, t.TLS = p.GrafanaURL, static.TLS{}
		case edgepath.KindManagement:
			t.URL = "https://" + p.keystoreAddrs.api
		}
		// The static configuration names neither spaces nor projects: only xds knows them.
		t.Ref.Spaces, t.Ref.Project = "", ""
		ts = append(ts, t)
	}
	// The login endpoints believe X-Forwarded-For (their limits' client address) only from the
	// edge's client certificate, as the management API believes identity headers.
	auth := static.Target{Ref: edgepath.Ref{Kind: edgepath.KindAuth}, URL: "https://" + p.keystoreAddrs.auth, TLS: upstream}
	return append(ts, auth)
}

// StartStaticEdge renders envoy/static for the platform's targets, starts an Envoy on it on free
// loopback ports, and returns once it is ready.
func (p *Platform) StartStaticEdge(ctx context.Context) (*StaticEdge, error) {
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	cp := p.controlPlane
	config, err := static.Render(static.Params{
		AdminAddress: addr(ports[1]), ListenAddress: addr(ports[0]),
		ServingCertFile: p.path("pki", "edge-serving.crt"), ServingKeyFile: p.path("pki", "edge-serving.key"),
		ExtAuthzAddress: p.extauthzGRPC,
		ExtAuthzTLS:     static.TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile},
		Targets:         p.StaticTargets(),
	})
	if err != nil {
		return nil, err
	}
	e := &StaticEdge{URL: "https://" + addr(ports[0]), AdminURL: "http://" + addr(ports[1]), Config: p.path("envoy-static.yaml")}
	if err := writeFile(e.Config, config, 0o644); err != nil {
		return nil, err
	}
	bin, err := toolbin.Path("envoy")
	if err != nil {
		return nil, err
	}
	p.step("starting a static Envoy (envoy/static) on %s", e.URL)
	e.envoy, err = proc.Start("envoy-static", p.logs, nil, bin, "-c", e.Config,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "info")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, e.envoy, "static Envoy", proc.HTTPReady(e.AdminURL+"/ready")); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}
