package server

// Tests against the real Envoy (.tools/bin/envoy, from `make tools`): what Envoy does with the
// secrets this package serves. A fake ext_authz allows every request; upstreams are HTTPS test
// servers that report the credential they saw.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/translate"
)

// edgeEnvoy is a Server of this package, serving one real Envoy.
type edgeEnvoy struct {
	srv      *Server
	log      *logbuf.Buffer
	envoy    *proc.Process
	edgeURL  string
	adminURL string
	client   *http.Client
}

// allowAll is an ext_authz that allows every request: these tests are about upstream
// credentials, and the edge fails closed without an ext_authz.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}, nil
}

// startEnvoy publishes initial and starts an Envoy on it; everything stops with the test.
func startEnvoy(t *testing.T, initial model.Model) *edgeEnvoy {
	t.Helper()
	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		t.Fatalf("%v (run `make tools`)", err)
	}
	dir := t.TempDir()
	edgeCA, err := pki.NewCA("edge CA")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := edgeCA.Server("edge", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ports, err := proc.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }

	e := &edgeEnvoy{log: &logbuf.Buffer{}, edgeURL: "https://" + addr(1), adminURL: "http://" + addr(2)}
	e.srv, err = New(Options{
		Translate: translate.Options{ListenAddress: "127.0.0.1", ListenPort: uint32(ports[1]), ServingCert: serving.CertPEM, ServingKey: serving.KeyPEM},
		Log:       slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Update(context.Background(), initial); err != nil {
		t.Fatal(err)
	}
	// Envoy and its control plane speak mutual TLS, as in production.
	cp, err := pki.WriteControlPlane(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := grpctls.Config{CertFile: cp.ServerCertFile, KeyFile: cp.ServerKeyFile, ClientCAFile: cp.CAFile}.ServerCredentials(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, l, creds) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	authzListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	authz := grpc.NewServer(grpc.Creds(creds))
	authv3.RegisterAuthorizationServer(authz, allowAll{})
	go authz.Serve(authzListener)
	t.Cleanup(authz.Stop)

	bootstrap, err := envoy.Render(envoy.Params{NodeID: "sds-test", AdminAddress: addr(2), XDSAddress: addr(0), ExtAuthzAddress: authzListener.Addr().String(),
		TLS: &envoy.TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	bootstrapFile := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrapFile, bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	e.envoy, err = proc.Start("envoy", dir, nil, envoyBin, "-c", bootstrapFile, "--disable-hot-restart", "--concurrency", "2", "--log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.envoy.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- last lines of the Envoy log ---\n%s\n--- xds log ---\n%s", e.envoy.Tail(40), tail(e.log.String(), 60))
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := proc.WaitFor(wctx, e.envoy, "Envoy", proc.HTTPReady(e.adminURL+"/ready")); err != nil {
		t.Fatal(err)
	}
	if err := proc.WaitFor(wctx, e.envoy, "Envoy's listener", proc.TCPReady(addr(1))); err != nil {
		t.Fatal(err)
	}
	e.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: edgeCA.Pool()}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16,
	}}
	return e
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// seen is what an upstream saw of a request.
type seen struct {
	ClientCN      string `json:"clientCN"`
	ClientSerial  string `json:"clientSerial"`
	Authorization string `json:"authorization"`
	// ServedWith names the serving certificate the upstream presented on the connection.
	ServedWith string `json:"servedWith"`
}

// upstream is an HTTPS server whose serving certificate can change (for new connections), that
// requires a client certificate from clientCAs if set, and answers with what it saw.
type upstream struct {
	*httptest.Server
	serving   atomic.Pointer[namedCert]
	closeConn atomic.Bool  // answer with Connection: close, so that Envoy reconnects
	requests  atomic.Int64 // requests that reached the handler
	servedBy  sync.Map     // remote address → name of the serving certificate of that connection
	hostport  string       // 127.0.0.1:port
	url       *url.URL     // https://127.0.0.1:port
}

type namedCert struct {
	name string
	cert tls.Certificate
}

func newUpstream(t *testing.T, clientCAs *x509.CertPool) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		s := seen{Authorization: r.Header.Get("Authorization")}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			s.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
			s.ClientSerial = r.TLS.PeerCertificates[0].SerialNumber.String()
		}
		if v, ok := u.servedBy.Load(r.RemoteAddr); ok {
			s.ServedWith = v.(string)
		}
		if u.closeConn.Load() {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}))
	// Per connection, so that a new certificate applies to new connections only, as with a real
	// server (httptest's own default certificate is never used).
	u.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := u.serving.Load()
		u.servedBy.Store(hello.Conn.RemoteAddr().String(), c.name)
		// No session resumption: a resumed session skips both certificates, and each connection
		// must show the ones Envoy presents and verifies now.
		cfg := &tls.Config{Certificates: []tls.Certificate{c.cert}, NextProtos: []string{"http/1.1"}, SessionTicketsDisabled: true}
		if clientCAs != nil {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
			cfg.ClientCAs = clientCAs
		}
		return cfg, nil
	}}
	return u
}

// serve makes the upstream present a certificate for 127.0.0.1 from ca, named name, on new
// connections; the first call starts it.
func (u *upstream) serve(t *testing.T, name string, ca *pki.CA) {
	t.Helper()
	pair, err := ca.Server("upstream", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	u.serving.Store(&namedCert{name: name, cert: c})
	if u.hostport == "" {
		u.StartTLS()
		t.Cleanup(u.Close)
		u.url, _ = url.Parse(u.URL)
		u.hostport = u.url.Host
	}
}

func serialOf(t *testing.T, p pki.Pair) string {
	t.Helper()
	block, _ := pem.Decode(p.CertPEM)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func clusterTarget(name string, u model.Upstream) model.Target {
	return model.Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: name}, Upstream: u}
}

// get sends one request through the edge and returns what the upstream saw.
func (e *edgeEnvoy) get(path string) (seen, error) {
	resp, err := e.client.Get(e.edgeURL + path)
	if err != nil {
		return seen{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return seen{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return seen{}, fmt.Errorf("GET %s: %d %s (%s)", path, resp.StatusCode, body, resp.Header.Get("x-envoy-response-flags"))
	}
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		return seen{}, fmt.Errorf("GET %s: %w: %s", path, err, body)
	}
	return s, nil
}

// consistently passes when n requests in a row to path all satisfy ok: a connection Envoy
// still pooled with an old credential would show up among them.
func (e *edgeEnvoy) consistently(path string, n int, ok func(seen) error) error {
	for i := range n {
		s, err := e.get(path)
		if err != nil {
			return err
		}
		if err := ok(s); err != nil {
			return fmt.Errorf("request %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

func waitUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// steadyLoad sends requests to paths from several clients, without pause, until stopped, and
// counts the ones that fail.
type steadyLoad struct {
	requests, failures atomic.Int64
	mu                 sync.Mutex
	firstFailures      []string
	stop               chan struct{}
	wg                 sync.WaitGroup
}

func (e *edgeEnvoy) startLoad(paths ...string) *steadyLoad {
	l := &steadyLoad{stop: make(chan struct{})}
	for _, path := range paths {
		for range 3 {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					l.requests.Add(1)
					if _, err := e.get(path); err != nil {
						l.failures.Add(1)
						l.mu.Lock()
						if len(l.firstFailures) < 5 {
							l.firstFailures = append(l.firstFailures, err.Error())
						}
						l.mu.Unlock()
					}
				}
			}()
		}
	}
	return l
}

func (l *steadyLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the rotations; first: %v", n, l.requests.Load(), l.firstFailures)
	} else {
		t.Logf("%d requests during the rotations, none failed", l.requests.Load())
	}
}

// envoyStats reads Envoy's counters whose names contain filter.
func (e *edgeEnvoy) envoyStats(t *testing.T, filter string) map[string]int {
	t.Helper()
	resp, err := http.Get(e.adminURL + "/stats?filter=" + url.QueryEscape(filter))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	stats := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if n, err := strconv.Atoi(value); ok && err == nil {
			stats[name] = n
		}
	}
	return stats
}

func (e *edgeEnvoy) configDump(t *testing.T, res string) string {
	t.Helper()
	resp, err := http.Get(e.adminURL + "/config_dump?resource=" + res)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// TestEnvoyRotatesCredentials: upstream credentials reach Envoy over SDS only, and rotating a
// client certificate, a bearer token and a CA (a new model, same targets) makes Envoy use the
// new one for every request, while a steady stream of requests sees no failure.
func TestEnvoyRotatesCredentials(t *testing.T) {
	caA, err := pki.NewCA("upstream CA A")
	if err != nil {
		t.Fatal(err)
	}
	caB, err := pki.NewCA("upstream CA B")
	if err != nil {
		t.Fatal(err)
	}
	clientCA, err := pki.NewCA("edge client CA")
	if err != nil {
		t.Fatal(err)
	}
	// Two certificates for the same name: a renewal, as cert-manager does it.
	var clients [2]pki.Pair
	for i := range clients {
		if clients[i], err = clientCA.Client("keygate-edge"); err != nil {
			t.Fatal(err)
		}
	}
	mtls := newUpstream(t, clientCA.Pool())
	mtls.serve(t, "A", caA)
	bearer := newUpstream(t, nil)
	bearer.serve(t, "A", caA)

	// The model at each step: the trusted CA bundle, the client certificate, the token.
	build := func(ca []byte, client pki.Pair, token string) model.Model {
		return model.New(
			clusterTarget("mtls", model.Upstream{URL: mtls.url, CA: ca, ClientCert: client.CertPEM, ClientKey: client.KeyPEM}),
			clusterTarget("bearer", model.Upstream{URL: bearer.url, CA: ca, Token: token}),
		)
	}
	e := startEnvoy(t, build(caA.CertPEM, clients[0], "token-1"))
	const mtlsPath, bearerPath = "/kubernetes/cluster/mtls/", "/kubernetes/cluster/bearer/"
	update := func(m model.Model) {
		t.Helper()
		if err := e.srv.Update(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	clientIs := func(p pki.Pair) func(seen) error {
		want := serialOf(t, p)
		return func(s seen) error {
			if s.ClientSerial != want || s.ClientCN != "keygate-edge" {
				return fmt.Errorf("upstream saw client certificate %s serial %s, want serial %s", s.ClientCN, s.ClientSerial, want)
			}
			return nil
		}
	}
	tokenIs := func(token string) func(seen) error {
		return func(s seen) error {
			if s.Authorization != "Bearer "+token {
				return fmt.Errorf("upstream saw Authorization %q, want %q", s.Authorization, "Bearer "+token)
			}
			return nil
		}
	}
	servedWith := func(name string) func(seen) error {
		return func(s seen) error {
			if s.ServedWith != name {
				return fmt.Errorf("connection served with certificate %q, want %q", s.ServedWith, name)
			}
			return nil
		}
	}

	waitUntil(t, "the first client certificate", func() error { return e.consistently(mtlsPath, 10, clientIs(clients[0])) })
	waitUntil(t, "the first token", func() error { return e.consistently(bearerPath, 10, tokenIs("token-1")) })

	// The credentials are in secrets, not in the clusters.
	secrets := e.configDump(t, "dynamic_active_secrets")
	for _, name := range []string{"serving", "ca_cluster_mtls", "client_cluster_mtls", "ca_cluster_bearer", "token_cluster_bearer"} {
		if !strings.Contains(secrets, `"name": "`+name+`"`) {
			t.Errorf("Envoy has no active secret %s:\n%s", name, tail(secrets, 40))
		}
	}
	if strings.Contains(secrets, "PRIVATE KEY") || strings.Contains(secrets, "token-1") {
		t.Errorf("Envoy's config dump shows a key or a token:\n%s", tail(secrets, 80))
	}
	clusters := e.configDump(t, "dynamic_active_clusters")
	if strings.Contains(clusters, "BEGIN") || strings.Contains(clusters, "token-1") || !strings.Contains(clusters, "client_cluster_mtls") {
		t.Errorf("clusters inline credentials or do not refer to their secrets:\n%s", tail(clusters, 80))
	}

	load := e.startLoad(mtlsPath, bearerPath)

	// A renewed client certificate: Envoy drains the connections made with the old one.
	update(build(caA.CertPEM, clients[1], "token-1"))
	waitUntil(t, "the renewed client certificate on every request", func() error { return e.consistently(mtlsPath, 20, clientIs(clients[1])) })

	// A new token applies per request.
	update(build(caA.CertPEM, clients[1], "token-2"))
	waitUntil(t, "the new token on every request", func() error { return e.consistently(bearerPath, 20, tokenIs("token-2")) })

	// A new CA, the way it is rolled out: trust both, move the upstreams to certificates from
	// the new one, then trust only the new one.
	update(build(append(append([]byte{}, caA.CertPEM...), caB.CertPEM...), clients[1], "token-2"))
	// Connections opened from now on are served with B; Envoy must trust it already.
	time.Sleep(500 * time.Millisecond)
	mtls.serve(t, "B", caB)
	bearer.serve(t, "B", caB)
	update(build(caB.CertPEM, clients[1], "token-2"))
	for _, path := range []string{mtlsPath, bearerPath} {
		waitUntil(t, path+" on connections served with CA B's certificate", func() error { return e.consistently(path, 20, servedWith("B")) })
	}
	if err := e.consistently(mtlsPath, 5, clientIs(clients[1])); err != nil {
		t.Error(err)
	}
	load.finish(t)

	// CA A is no longer trusted: an upstream presenting A's certificate on a new connection is
	// refused (the upstream closes each connection, so that Envoy has to open a new one).
	failedBefore := e.envoyStats(t, "cluster.cluster_mtls.ssl.fail_verify_error")["cluster.cluster_mtls.ssl.fail_verify_error"]
	mtls.serve(t, "A", caA)
	mtls.closeConn.Store(true)
	waitUntil(t, "CA A refused after the rotation", func() error {
		if _, err := e.get(mtlsPath); err == nil {
			return fmt.Errorf("GET %s passed", mtlsPath)
		}
		if got := e.envoyStats(t, "cluster.cluster_mtls.ssl.fail_verify_error")["cluster.cluster_mtls.ssl.fail_verify_error"]; got <= failedBefore {
			return fmt.Errorf("ssl.fail_verify_error = %d, want more than %d", got, failedBefore)
		}
		return nil
	})

	stats := e.envoyStats(t, "update_rejected")
	if len(stats) == 0 {
		t.Error("no update_rejected counters in Envoy's stats")
	}
	for name, n := range stats {
		if n != 0 {
			t.Errorf("%s = %d: Envoy rejected an update", name, n)
		}
	}
}

// TestEnvoyWarmsClustersUntilTheirSecretsArrive: Envoy does not use a cluster before its secrets
// have arrived, whatever order xds sends them in. A snapshot is published with two new clusters
// but without their secrets (what Update never does): Envoy keeps both warming, their routes
// answer 503 and nothing reaches their upstreams; once the secrets come, both serve with their
// credentials.
func TestEnvoyWarmsClustersUntilTheirSecretsArrive(t *testing.T) {
	ca, err := pki.NewCA("upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("keygate-edge")
	if err != nil {
		t.Fatal(err)
	}
	mtls := newUpstream(t, ca.Pool())
	mtls.serve(t, "A", ca)
	late := newUpstream(t, ca.Pool())
	late.serve(t, "A", ca)
	lateBearer := newUpstream(t, nil)
	lateBearer.serve(t, "A", ca)

	first := model.New(clusterTarget("mtls", model.Upstream{URL: mtls.url, CA: ca.CertPEM, ClientCert: client.CertPEM, ClientKey: client.KeyPEM}))
	full := model.New(append(first.Targets,
		clusterTarget("late", model.Upstream{URL: late.url, CA: ca.CertPEM, ClientCert: client.CertPEM, ClientKey: client.KeyPEM}),
		clusterTarget("late-bearer", model.Upstream{URL: lateBearer.url, CA: ca.CertPEM, Token: "late-token"}),
	)...)
	e := startEnvoy(t, first)

	res, err := translate.Translate(full, e.srv.opts)
	if err != nil {
		t.Fatal(err)
	}
	byType := res.ByType()
	withheld := map[string]bool{"ca_cluster_late": true, "client_cluster_late": true, "ca_cluster_late-bearer": true, "token_cluster_late-bearer": true}
	var kept []types.Resource
	for _, r := range byType[resource.SecretType] {
		if !withheld[cache.GetResourceName(r)] {
			kept = append(kept, r)
		}
	}
	if len(kept) != len(byType[resource.SecretType])-len(withheld) {
		t.Fatalf("the secrets to withhold are not all in the configuration: %v", withheld)
	}
	byType[resource.SecretType] = kept
	snap, err := cache.NewSnapshot("without-secrets", byType)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.cache.SetSnapshot(context.Background(), nodeGroup, snap); err != nil {
		t.Fatal(err)
	}

	warming := func() error {
		dump := e.configDump(t, "dynamic_warming_clusters")
		for _, c := range []string{"cluster_late", "cluster_late-bearer"} {
			if !strings.Contains(dump, `"name": "`+c+`"`) {
				return fmt.Errorf("%s is not warming:\n%s", c, tail(dump, 20))
			}
		}
		return nil
	}
	waitUntil(t, "the new clusters warming", warming)
	// Still warming a while later: Envoy waits for the secrets (up to the SDS initial fetch
	// timeout, 15s), it does not start the clusters without them.
	time.Sleep(2 * time.Second)
	if err := warming(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/kubernetes/cluster/late/", "/kubernetes/cluster/late-bearer/"} {
		if _, err := e.get(path); err == nil || !strings.Contains(err.Error(), ": 503 ") {
			t.Errorf("GET %s while its cluster warms: %v, want 503", path, err)
		}
	}
	if n := late.requests.Load() + lateBearer.requests.Load(); n != 0 {
		t.Errorf("%d requests reached the upstreams of clusters without their secrets", n)
	}
	if _, err := e.get("/kubernetes/cluster/mtls/"); err != nil {
		t.Errorf("the active cluster beside the warming ones: %v", err)
	}

	// The secrets arrive: both clusters serve, with their credentials.
	if err := e.srv.Update(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "late serving with its client certificate", func() error {
		s, err := e.get("/kubernetes/cluster/late/")
		if err == nil && s.ClientSerial != serialOf(t, client) {
			err = fmt.Errorf("upstream saw client certificate serial %q", s.ClientSerial)
		}
		return err
	})
	waitUntil(t, "late-bearer serving with its token", func() error {
		s, err := e.get("/kubernetes/cluster/late-bearer/")
		if err == nil && s.Authorization != "Bearer late-token" {
			err = fmt.Errorf("upstream saw Authorization %q", s.Authorization)
		}
		return err
	})
	if dump := e.configDump(t, "dynamic_warming_clusters"); strings.Contains(dump, "cluster_late") {
		t.Errorf("clusters still warming after their secrets arrived:\n%s", tail(dump, 20))
	}
}
