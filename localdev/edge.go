package localdev

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// ActivityFlushInterval is extauthz's --activity-flush-interval on the local platform.
const ActivityFlushInterval = time.Second

// edgeAddrs are the loopback addresses of the edge's components.
type edgeAddrs struct {
	edge               string // Envoy's HTTPS listener, which xds configures
	xdsGRPC, xdsHTTP   string
	authGRPC, authHTTP string
	envoyAdmin         string
}

// startEdge starts xds, extauthz and Envoy, each on free loopback ports but the edge port.
// Envoy, xds and extauthz speak mutual TLS with the control plane's own CA (p.controlPlane), as
// in production: the gRPC ports serve secrets and decisions even on loopback.
func (p *Platform) startEdge(ctx context.Context, a edgeAddrs) error {
	certFile, keyFile, err := p.writeEdgeCerts()
	if err != nil {
		return err
	}
	p.step("starting xds")
	if err := p.startXDS(a, certFile, keyFile); err != nil {
		return err
	}
	p.step("starting extauthz")
	p.extauthzArgs = []string{"--grpc-address", a.authGRPC, "--http-address", a.authHTTP,
		"--grafana-user-header", GrafanaUserHeader, "--log-format", "text", "--log-level", "debug",
		// Locally, status.lastActivity should show a use at once rather than after the
		// production default of 10s.
		"--activity-flush-interval", ActivityFlushInterval.String()}
	p.extauthzHTTP, p.extauthzGRPC = a.authHTTP, a.authGRPC
	p.extauthzArgs = append(p.extauthzArgs, grafanaExtAuthzArgs...)
	p.extauthzArgs = append(p.extauthzArgs, p.RedisArgs()...)
	p.extauthzArgs = append(p.extauthzArgs, p.grpcTLSArgs()...)
	if err := p.StartExtAuthz(ctx); err != nil {
		return err
	}
	if err := p.startReplicas(ctx); err != nil {
		return err
	}
	return p.startEnvoy(ctx, a)
}

// writeEdgeCerts creates the edge CA (EdgeCA, also in pki/edge-ca.crt) and the edge's serving
// certificate, and returns the latter's files.
func (p *Platform) writeEdgeCerts() (certFile, keyFile string, err error) {
	edgeCA, err := pki.NewCA("keygate local edge CA")
	if err != nil {
		return "", "", err
	}
	serving, err := edgeCA.Server("keygate edge", "127.0.0.1", "localhost")
	if err != nil {
		return "", "", err
	}
	certFile, keyFile, err = serving.Write(p.path("pki"), "edge-serving")
	if err != nil {
		return "", "", err
	}
	p.EdgeCA = edgeCA.CertPEM
	if err := writeFile(p.path("pki", "edge-ca.crt"), edgeCA.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// pickEdgeAddrs picks free ports (the edge's only if Options.EdgePort is 0) and sets the URLs
// that the Platform shows.
func (p *Platform) pickEdgeAddrs() (edgeAddrs, error) {
	var err error
	edgePort := p.opts.EdgePort
	if edgePort == 0 {
		if edgePort, err = proc.FreePort(); err != nil {
			return edgeAddrs{}, err
		}
	}
	ports, err := proc.FreePorts(5)
	if err != nil {
		return edgeAddrs{}, err
	}
	a := edgeAddrs{edge: addr(edgePort),
		xdsGRPC: addr(ports[0]), xdsHTTP: addr(ports[1]),
		authGRPC: addr(ports[2]), authHTTP: addr(ports[3]),
		envoyAdmin: addr(ports[4])}
	p.EdgeURL = "https://" + a.edge
	p.EnvoyAdminURL = "http://" + a.envoyAdmin
	p.XDSMetricsURL = "http://" + a.xdsHTTP + "/metrics"
	return a, nil
}

// startXDS starts xds on the targets file, serving the edge listener with certFile and keyFile;
// startEnvoy waits for it to be ready.
func (p *Platform) startXDS(a edgeAddrs, certFile, keyFile string) error {
	p.xdsArgs = append([]string{
		"--targets-file", p.TargetsFile,
		"--grpc-address", a.xdsGRPC, "--http-address", a.xdsHTTP,
		"--listen-address", a.edge,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--log-format", "text"}, p.grpcTLSArgs()...)
	q, err := proc.Start("xds", p.logs, nil, filepath.Join(p.Bin, "xds"), p.xdsArgs...)
	p.xds.Store(q)
	return err
}

// grpcTLSArgs are the flags of xds's and extauthz's gRPC ports: the shared serving certificate
// and the control plane's CA, which signed Envoy's client certificate.
func (p *Platform) grpcTLSArgs() []string {
	cp := p.controlPlane
	return []string{"--grpc-tls-cert-file", cp.ServerCertFile, "--grpc-tls-key-file", cp.ServerKeyFile, "--grpc-client-ca-file", cp.CAFile}
}

// startEnvoy starts Envoy once xds is ready, and waits until Envoy is.
func (p *Platform) startEnvoy(ctx context.Context, a edgeAddrs) error {
	cp := p.controlPlane
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "keygate-local", AdminAddress: a.envoyAdmin, XDSAddress: a.xdsGRPC, ExtAuthzAddress: a.authGRPC,
		ExtAuthzReplicaPorts: p.replicaPorts(),
		TLS:                  &envoy.TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile}})
	if err != nil {
		return err
	}
	bootstrapFile := p.path("envoy.yaml")
	if err := writeFile(bootstrapFile, bootstrap, 0o644); err != nil {
		return err
	}
	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, p.xds.Load(), "xds", proc.HTTPReady("http://"+a.xdsHTTP+"/readyz")); err != nil {
		return err
	}
	p.step("starting Envoy on %s", p.EdgeURL)
	// Hot restart is off so that several Envoys (parallel test packages) can share a machine.
	p.envoy, err = proc.Start("envoy", p.logs, nil, envoyBin, "-c", bootstrapFile,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "info")
	if err != nil {
		return err
	}
	return proc.WaitFor(wctx, p.envoy, "Envoy", proc.HTTPReady(p.EnvoyAdminURL+"/ready"))
}

// StartExtAuthz (re)starts extauthz with the arguments of the first start and waits until it
// is ready.
func (p *Platform) StartExtAuthz(ctx context.Context) error { return p.StartExtAuthzReplica(ctx, 0) }

// StopExtAuthz stops extauthz (to prove that the edge then fails closed).
func (p *Platform) StopExtAuthz() { p.extauthz.Load().Stop(10 * time.Second) }

// waitEdgeServes polls every target through the edge with the admin key until each answers.
func (p *Platform) waitEdgeServes(ctx context.Context) error {
	client, err := p.HTTPClient()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, r := range p.Refs() {
		url := p.EdgeURL + r.Prefix() + "readyz"
		if r.Kind == edgepath.KindGrafana {
			url = p.EdgeURL + r.Prefix() + "api/health"
		}
		err := proc.WaitFor(wctx, p.envoy, r.String()+" through the edge", func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+p.AdminKey)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", resp.Status, body)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
