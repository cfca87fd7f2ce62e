package localdev

import (
	"context"
	"path/filepath"
	"time"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// Edge is one more xds and Envoy on the platform's targets, extauthz and serving certificate,
// with xds flags of its own: tests of short stream bounds or idle timeouts run there, so they
// never change the main edge under other tests.
type Edge struct {
	// URL is its HTTPS listener, e.g. https://127.0.0.1:9443.
	URL        string
	xds, envoy *proc.Process
}

// Stop stops its Envoy and xds.
func (e *Edge) Stop() {
	for _, q := range []*proc.Process{e.envoy, e.xds} {
		if q != nil {
			q.Stop(10 * time.Second)
		}
	}
}

// StartEdge starts an Edge named name (its logs are xds-name and envoy-name) with xdsArgs
// added to xds's command line, and returns once Envoy is ready.
func (p *Platform) StartEdge(ctx context.Context, name string, xdsArgs ...string) (_ *Edge, err error) {
	ports, err := proc.FreePorts(4)
	if err != nil {
		return nil, err
	}
	e := &Edge{URL: "https://" + addr(ports[0])}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	args := append([]string{"--targets-file", p.TargetsFile,
		"--grpc-address", addr(ports[1]), "--http-address", addr(ports[2]), "--listen-address", addr(ports[0]),
		"--tls-cert-file", p.path("pki", "edge-serving.crt"), "--tls-key-file", p.path("pki", "edge-serving.key"),
		"--log-format", "text"}, p.grpcTLSArgs()...)
	if e.xds, err = proc.Start("xds-"+name, p.logs, nil, filepath.Join(p.Bin, "xds"), append(args, xdsArgs...)...); err != nil {
		return nil, err
	}
	cp := p.controlPlane
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "keygate-" + name, AdminAddress: addr(ports[3]), XDSAddress: addr(ports[1]), ExtAuthzAddress: p.extauthzGRPC,
		ExtAuthzReplicaPorts: p.replicaPorts(), TLS: &envoy.TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile}})
	if err != nil {
		return nil, err
	}
	bootstrapFile := p.path("envoy-" + name + ".yaml")
	if err := writeFile(bootstrapFile, bootstrap, 0o644); err != nil {
		return nil, err
	}
	bin, err := toolbin.Path("envoy")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, e.xds, "xds "+name, proc.HTTPReady("http://"+addr(ports[2])+"/readyz")); err != nil {
		return nil, err
	}
	if e.envoy, err = proc.Start("envoy-"+name, p.logs, nil, bin, "-c", bootstrapFile,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "info"); err != nil {
		return nil, err
	}
	return e, proc.WaitFor(wctx, e.envoy, "Envoy "+name, proc.HTTPReady("http://"+addr(ports[3])+"/ready"))
}
