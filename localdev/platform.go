// Package localdev runs the whole platform on one machine, on free loopback ports: Redis, one
// etcd, kube-apiservers standing in for connected clusters and a virtual cluster, a Grafana
// stand-in, and the edge itself (xds, extauthz, Envoy). `make run` and the end-to-end tests
// both use it, so what the tests prove is what a developer runs.
package localdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate-dev/keygate/internal/kubeletstub"
	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/internal/testidp"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// AdminUser is the user of the admin access key; it is a cluster admin on every demo cluster.
const AdminUser = kubeserver.AdminUser

// Names of the demo targets.
const (
	ClusterDemo             = "demo"
	ClusterStaging          = "staging"
	VirtualClusterName      = "vc1"
	VirtualClusterNamespace = "vcluster-demo"
	VirtualClusterHost      = ClusterDemo
	// Project owns space SpaceName (a namespace of demo) and virtual cluster vc1.
	Project   = "demo-project"
	SpaceName = "team-a"
)

// Options configure a platform.
type Options struct {
	// Dir holds all state: certificates, keys, logs, data. It should be empty.
	Dir string
	// EdgePort is the edge's HTTPS port; 0 picks a free one.
	EdgePort int
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// SSO starts the test identity provider and gives keystore a connector for it (sso.go).
	SSO bool
	// Sentinel runs Redis as a master, a replica and three Sentinels (sentinel.go) instead of
	// one server; the components find the master through the Sentinels.
	Sentinel bool
	// RedisCluster runs Redis as a six-node Redis Cluster (three masters, three replicas;
	// cluster.go) instead of one server; the components get every node's address.
	RedisCluster bool
	// KeystoreArgs are added to `keystore serve`'s flags (they win over the platform's).
	KeystoreArgs []string
	// ExtauthzReplicas is how many extauthz processes run behind Envoy's extauthz cluster
	// (replicas.go); 0 means one.
	ExtauthzReplicas int
}

// Platform is a running local platform.
type Platform struct {
	Dir string
	// EdgeURL is the edge's base URL, e.g. https://127.0.0.1:8443.
	EdgeURL string
	// EdgeCA is the PEM CA that signed the edge's serving certificate.
	EdgeCA []byte
	// AdminKey is an access key for user admin, unscoped.
	AdminKey string
	// RedisAddr is the key store's Redis.
	RedisAddr string
	// Clusters are the connected clusters' API servers by name; VirtualCluster is vc1's.
	Clusters       map[string]*kubeserver.APIServer
	VirtualCluster *kubeserver.APIServer
	// GrafanaURL is where demo's Grafana stand-in listens (directly, not through the edge).
	GrafanaURL string
	// TargetsFile is the file xds reads; edit it (see EditTargets) to add or remove targets.
	TargetsFile string
	// EnvoyAdminURL is Envoy's admin endpoint, e.g. for /stats.
	EnvoyAdminURL string
	// XDSMetricsURL is xds's /metrics.
	XDSMetricsURL string
	// Bin is the directory holding the built xds, extauthz and keystore binaries.
	Bin string
	// PrometheusURL is the local Prometheus, which scrapes every component (prometheus.go).
	PrometheusURL string
	// IdP is the test identity provider, with Options.SSO.
	IdP *testidp.IdP
	// Kubelet stands in for the kubelet of every demo cluster's node (kubelet.go).
	Kubelet *kubeletstub.Server

	opts         Options
	logs         string
	redis        *redisserver.Server   // the one Redis, or the first master with Options.Sentinel
	redisNodes   []*redisserver.Server // with Options.Sentinel: the master and the replica; with RedisCluster every node
	sentinels    []*redisserver.Server
	redisCluster *redisserver.Cluster
	etcd         *proc.Process
	grafana      *http.Server
	mu           sync.Mutex
	targets      Targets
	// xds, extauthz and keystore are swapped when a fault test restarts them while another
	// goroutine reads them (the soak's sampler, Components), hence atomic; the rest never are.
	xds          atomic.Pointer[proc.Process]
	extauthz     atomic.Pointer[proc.Process]
	envoy        *proc.Process
	extauthzArgs []string
	// extauthzHTTP is extauthz's --http-address, where StartExtAuthz waits for /readyz.
	extauthzHTTP  string
	extauthzGRPC  string            // its --grpc-address, which a static Envoy (StartStaticEdge) calls too
	controlPlane  *pki.ControlPlane // the mutual TLS of Envoy, xds and extauthz
	keystore      atomic.Pointer[proc.Process]
	keystoreAddrs struct{ api, auth, http, oidc string }
	prometheus    *proc.Process

	// replicas are the extauthz processes after the first (Options.ExtauthzReplicas), and
	// xdsArgs and keystoreArgs what restarts xds and keystore (replicas.go).
	replicas              []*extauthzReplica
	xdsArgs, keystoreArgs []string
}

// Start brings the platform up and returns once a request through the edge reaches every
// target. On error, whatever was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Platform, err error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	p := &Platform{Dir: opts.Dir, opts: opts, logs: filepath.Join(opts.Dir, "logs"), Clusters: map[string]*kubeserver.APIServer{}}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	for _, d := range []string{p.logs, p.path("pki"), p.path("bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	certs, err := p.buildAndStartBackends(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.startKeygate(ctx, certs); err != nil {
		return nil, err
	}
	p.step("creating the admin access key")
	if p.AdminKey, err = p.CreateKeyWithCommand(ctx, "admin", AdminUser, "--groups", AdminGroup); err != nil {
		return nil, err
	}
	p.step("waiting until every target answers through the edge")
	if err := p.waitEdgeServes(ctx); err != nil {
		return nil, err
	}
	if err := p.startPrometheus(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// buildAndStartBackends builds our binaries and starts Redis, etcd and the API servers, and
// returns the certificates of the platform CA. These are the slow parts, so they run side by
// side.
func (p *Platform) buildAndStartBackends(ctx context.Context) (*kubeserver.Certs, error) {
	// The certificates first: they are quick, the API servers need them, and failing here
	// leaves nothing running in the background while Start's caller stops the platform.
	certs, err := p.platformCerts()
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var buildErr, redisErr, kubeErr error
	wg.Add(3)
	go func() { defer wg.Done(); buildErr = p.build(ctx) }()
	go func() { defer wg.Done(); redisErr = p.startRedis(ctx) }()
	go func() { defer wg.Done(); kubeErr = p.startKube(ctx, certs) }()
	wg.Wait()
	return certs, errors.Join(buildErr, redisErr, kubeErr)
}

// startKeygate starts the Grafana stand-in (the one upstream that is quick to start), then
// keygate's own components: keystore, and the edge on the initial targets.
func (p *Platform) startKeygate(ctx context.Context, certs *kubeserver.Certs) error {
	var err error
	p.grafana, p.GrafanaURL, err = startGrafana(ClusterDemo)
	if err != nil {
		return err
	}
	// The edge's addresses and the control plane's PKI come first: keystore reads the targets
	// from xds's gRPC port (internal/catalog) with a client certificate of its CA.
	a, err := p.pickEdgeAddrs()
	if err != nil {
		return err
	}
	if p.controlPlane, err = pki.WriteControlPlane(p.path("pki"), "127.0.0.1", "localhost"); err != nil {
		return err
	}
	if err := p.startKeystore(ctx, certs, a.xdsGRPC); err != nil {
		return err
	}
	if err := p.writeInitialTargets(certs); err != nil {
		return err
	}
	return p.startEdge(ctx, a)
}

func (p *Platform) path(elem ...string) string {
	return filepath.Join(append([]string{p.Dir}, elem...)...)
}

func (p *Platform) step(format string, args ...any) {
	fmt.Fprintf(p.opts.Progress, "==> "+format+"\n", args...)
}

// build compiles xds, extauthz and keystore into Dir/bin (incremental: fast when nothing
// changed).
func (p *Platform) build(ctx context.Context) error {
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	p.step("building xds, extauthz and keystore")
	p.Bin = p.path("bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", p.Bin+string(filepath.Separator),
		"./xds/cmd/xds", "./extauthz/cmd/extauthz", "./keystore/cmd/keystore", "./keystore/cmd/keygate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Stop stops everything, in an order that lets each part exit quickly (API servers before
// their etcd).
func (p *Platform) Stop() {
	for _, q := range append([]*proc.Process{p.prometheus, p.envoy, p.extauthz.Load(), p.xds.Load(), p.keystore.Load()}, p.replicaProcs()...) {
		if q != nil {
			q.Stop(10 * time.Second)
		}
	}
	if p.grafana != nil {
		_ = p.grafana.Close()
	}
	if p.Kubelet != nil {
		p.Kubelet.Stop()
	}
	if p.IdP != nil {
		p.IdP.Stop()
	}
	var wg sync.WaitGroup
	for _, a := range append([]*kubeserver.APIServer{p.VirtualCluster}, p.Clusters[ClusterDemo], p.Clusters[ClusterStaging]) {
		wg.Add(1)
		go func() { defer wg.Done(); a.Stop() }()
	}
	wg.Wait()
	if p.etcd != nil {
		p.etcd.Stop(10 * time.Second)
	}
	for _, r := range append(p.sentinels, p.redisNodes...) {
		r.Stop()
	}
	if p.redis != nil && len(p.redisNodes) == 0 {
		p.redis.Stop()
	}
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, mode)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
