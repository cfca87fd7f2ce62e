// Package localdev runs the whole platform on one machine, on free loopback ports: Redis, one
// etcd, kube-apiservers standing in for connected clusters and a virtual cluster, a Grafana
// stand-in, and the edge itself (xds, extauthz, Envoy). `make run` and the end-to-end tests
// both use it, so what the tests prove is what a developer runs.
package localdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
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

	opts          Options
	logs          string
	redis         *redisserver.Server
	etcd          *proc.Process
	grafana       *http.Server
	mu            sync.Mutex
	targets       Targets
	xds           *proc.Process
	extauthz      *proc.Process
	envoy         *proc.Process
	extauthzArgs  []string
	keystore      *proc.Process
	keystoreAddrs struct{ api, auth, http string }
}

// ActivityFlushInterval is extauthz's --activity-flush-interval on the local platform.
const ActivityFlushInterval = time.Second

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
	return p, nil
}

// buildAndStartBackends builds our binaries and starts Redis, etcd and the API servers, and
// returns the certificates of the platform CA. These are the slow parts, so they run side by
// side.
func (p *Platform) buildAndStartBackends(ctx context.Context) (*kubeserver.Certs, error) {
	var wg sync.WaitGroup
	var buildErr, redisErr, kubeErr error
	wg.Add(3)
	go func() { defer wg.Done(); buildErr = p.build(ctx) }()
	go func() { defer wg.Done(); redisErr = p.startRedis(ctx) }()
	certs, err := p.platformCerts()
	if err != nil {
		return nil, err
	}
	go func() { defer wg.Done(); kubeErr = p.startKube(ctx, certs) }()
	wg.Wait()
	return certs, errors.Join(buildErr, redisErr, kubeErr)
}

func (p *Platform) startRedis(ctx context.Context) error {
	p.step("starting Redis")
	// Append-only with an fsync per write: a crash or restart of Redis loses no access
	// key that was acknowledged (e2e restarts it to prove this).
	var err error
	p.redis, err = redisserver.Start(ctx, redisserver.Options{Dir: p.path("redis"), AppendOnly: true})
	if err == nil {
		p.RedisAddr = p.redis.Addr
	}
	return err
}

// startKeygate starts the Grafana stand-in (the one upstream that is quick to start), then
// keygate's own components: keystore, and the edge on the initial targets.
func (p *Platform) startKeygate(ctx context.Context, certs *kubeserver.Certs) error {
	var err error
	p.grafana, p.GrafanaURL, err = startGrafana(ClusterDemo)
	if err != nil {
		return err
	}
	if err := p.startKeystore(ctx, certs); err != nil {
		return err
	}
	if err := p.writeInitialTargets(certs); err != nil {
		return err
	}
	return p.startEdge(ctx)
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
		"./xds/cmd/xds", "./extauthz/cmd/extauthz", "./keystore/cmd/keystore")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// platformCerts creates the CA that the demo API servers use for serving and client
// certificates, the admin client certificate, and the service-account key.
func (p *Platform) platformCerts() (*kubeserver.Certs, error) {
	ca, err := pki.NewCA("keygate local platform CA")
	if err != nil {
		return nil, err
	}
	return kubeserver.NewCerts(ca, p.path("pki"), "platform-ca.crt", "keygate-local-admin")
}

func (p *Platform) startKube(ctx context.Context, certs *kubeserver.Certs) error {
	p.step("starting etcd")
	etcd, etcdURL, err := kubeserver.StartEtcd(ctx, p.Dir)
	if err != nil {
		return err
	}
	p.etcd = etcd
	p.step("starting kube-apiservers %s, %s and %s (virtual cluster)", ClusterDemo, ClusterStaging, VirtualClusterName)
	names := []string{ClusterDemo, ClusterStaging, VirtualClusterName}
	servers := make([]*kubeserver.APIServer, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = kubeserver.StartAPIServer(ctx, p.Dir, name, etcdURL, certs)
		}()
	}
	wg.Wait()
	p.Clusters[ClusterDemo], p.Clusters[ClusterStaging], p.VirtualCluster = servers[0], servers[1], servers[2]
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The virtual cluster runs in this namespace of its host cluster, as vcluster does.
	if err := p.Clusters[ClusterDemo].CreateNamespace(ctx, VirtualClusterNamespace); err != nil {
		return err
	}
	return p.Clusters[ClusterDemo].CreateNamespace(ctx, SpaceName)
}

// edgeAddrs are the loopback addresses of the edge's components.
type edgeAddrs struct {
	edge               string // Envoy's HTTPS listener, which xds configures
	xdsGRPC, xdsHTTP   string
	authGRPC, authHTTP string
	envoyAdmin         string
}

// startEdge starts xds, extauthz and Envoy, each on free loopback ports but the edge port.
func (p *Platform) startEdge(ctx context.Context) error {
	certFile, keyFile, err := p.writeEdgeCerts()
	if err != nil {
		return err
	}
	a, err := p.pickEdgeAddrs()
	if err != nil {
		return err
	}
	p.step("starting xds")
	if err := p.startXDS(a, certFile, keyFile); err != nil {
		return err
	}
	p.step("starting extauthz")
	p.extauthzArgs = []string{"--grpc-address", a.authGRPC, "--http-address", a.authHTTP,
		"--redis-address", p.RedisAddr, "--grafana-user-header", GrafanaUserHeader, "--log-format", "text", "--log-level", "debug",
		// Locally, status.lastActivity should show a use at once rather than after the
		// production default of 10s.
		"--activity-flush-interval", ActivityFlushInterval.String()}
	if err := p.StartExtAuthz(ctx); err != nil {
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
	var err error
	p.xds, err = proc.Start("xds", p.logs, nil, filepath.Join(p.Bin, "xds"),
		"--targets-file", p.TargetsFile,
		"--grpc-address", a.xdsGRPC, "--http-address", a.xdsHTTP,
		"--listen-address", a.edge,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--log-format", "text")
	return err
}

// startEnvoy starts Envoy once xds is ready, and waits until Envoy is.
func (p *Platform) startEnvoy(ctx context.Context, a edgeAddrs) error {
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "keygate-local", AdminAddress: a.envoyAdmin, XDSAddress: a.xdsGRPC, ExtAuthzAddress: a.authGRPC})
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
	if err := proc.WaitFor(wctx, p.xds, "xds", proc.HTTPReady("http://"+a.xdsHTTP+"/readyz")); err != nil {
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
func (p *Platform) StartExtAuthz(ctx context.Context) error {
	var err error
	p.extauthz, err = proc.Start("extauthz", p.logs, nil, filepath.Join(p.Bin, "extauthz"), p.extauthzArgs...)
	if err != nil {
		return err
	}
	httpAddr := p.extauthzArgs[3]
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, p.extauthz, "extauthz", proc.HTTPReady("http://"+httpAddr+"/readyz"))
}

// StopExtAuthz stops extauthz (to prove that the edge then fails closed).
func (p *Platform) StopExtAuthz() { p.extauthz.Stop(10 * time.Second) }

// CreateKeyWithCommand creates an unscoped access key for user with the keystore command, the
// way an operator bootstraps one, and returns the plain key.
func (p *Platform) CreateKeyWithCommand(ctx context.Context, name, user string, extraArgs ...string) (string, error) {
	args := append([]string{"create-key", "--redis-address", p.RedisAddr, "--name", name, "--user", user}, extraArgs...)
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("keystore create-key: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// RunKeystore runs the keystore command with args against the platform's Redis
// (KEYSTORE_REDIS_ADDRESS; a --redis-address in args wins), with stdin as its standard input
// (nil: empty), and returns its standard output. An error carries its standard error.
func (p *Platform) RunKeystore(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	cmd.Env = append(os.Environ(), "KEYSTORE_REDIS_ADDRESS="+p.RedisAddr)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("keystore %s: %w: %s", strings.Join(args[:min(1, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// RestartRedis kills Redis abruptly (SIGKILL, as a crash or an OOM kill would) and starts it
// again on the same address with the same append-only file. extauthz and keystore keep
// running and reconnect on their own; until they have, requests may fail.
func (p *Platform) RestartRedis(ctx context.Context) error {
	p.step("restarting Redis (SIGKILL)")
	return p.redis.Crash(ctx)
}

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

// Refs are the demo targets that need an access key.
func (p *Platform) Refs() []edgepath.Ref {
	return []edgepath.Ref{
		{Kind: edgepath.KindCluster, Cluster: ClusterDemo, Spaces: edgepath.FormatSpaces(map[string]string{SpaceName: Project})},
		{Kind: edgepath.KindCluster, Cluster: ClusterStaging},
		{Kind: edgepath.KindVirtualCluster, Cluster: VirtualClusterHost, Namespace: VirtualClusterNamespace, VirtualCluster: VirtualClusterName, Project: Project},
		{Kind: edgepath.KindGrafana, Cluster: ClusterDemo},
		{Kind: edgepath.KindManagement},
	}
}

// AdminGroup is keystore's --admin-group: its members see and manage every access key.
const AdminGroup = "keygate:admins"

// startKeystore starts `keystore serve`: the management API and the login endpoints, with a
// serving certificate of the platform CA, believing identity headers only from the edge's
// client certificate.
func (p *Platform) startKeystore(ctx context.Context, certs *kubeserver.Certs) error {
	ports, err := proc.FreePorts(3)
	if err != nil {
		return err
	}
	p.keystoreAddrs.api, p.keystoreAddrs.auth, p.keystoreAddrs.http = addr(ports[0]), addr(ports[1]), addr(ports[2])
	serving, err := certs.CA.Server("keygate keystore", "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(p.path("pki"), "keystore-serving")
	if err != nil {
		return err
	}
	p.step("starting keystore (management API and login)")
	p.keystore, err = proc.Start("keystore", p.logs, nil, filepath.Join(p.Bin, "keystore"), "serve",
		"--address", p.keystoreAddrs.api, "--auth-address", p.keystoreAddrs.auth, "--http-address", p.keystoreAddrs.http,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--requestheader-client-ca-file", certs.CAFile, "--requestheader-allowed-names", kubeserver.EdgeUser,
		"--admin-group", AdminGroup, "--redis-address", p.RedisAddr, "--log-format", "text")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, p.keystore, "keystore", proc.HTTPReady("http://"+p.keystoreAddrs.http+"/readyz"))
}

// Stop stops everything, in an order that lets each part exit quickly (API servers before
// their etcd).
func (p *Platform) Stop() {
	for _, q := range []*proc.Process{p.envoy, p.extauthz, p.xds, p.keystore} {
		if q != nil {
			q.Stop(10 * time.Second)
		}
	}
	if p.grafana != nil {
		_ = p.grafana.Close()
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
	if p.redis != nil {
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
