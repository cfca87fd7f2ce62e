package app

// The integration test: xds (this package's Run, in-process) programs a real Envoy, which
// serves real HTTPS to upstream test servers. A fake ext_authz allows every request except
// those with the key "Bearer test-deny": it tests xds's configuration, not extauthz. (Envoy
// sends ext_authz only the headers extauthz reads, Authorization among them.)

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/logbuf"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/translate"
)

// edge is the running platform every test of the package shares: one Envoy, one xds.
var edge *platform

type platform struct {
	dir         string // targets file, PKI, logs
	targetsFile string
	edgeURL     string // https://127.0.0.1:port
	adminURL    string // Envoy admin
	xdsHTTP     string // xds /metrics etc.
	client      *http.Client
	xdsLog      *logbuf.Buffer
	envoy       *proc.Process

	authz     *grpc.Server
	authzAddr string

	// xds runs in-process; stopXDS ends it and startXDS runs it again with the same flags.
	xdsArgs []string
	xdsOut  io.Writer
	stopXDS func() error

	upstreamCA *pki.CA
	edgeCert   pki.Pair
	upstreams  map[string]*httptest.Server
	// controlPlane are the certificates of the mutual TLS between Envoy and xds and the fake
	// ext_authz, as in production.
	controlPlane *pki.ControlPlane
}

// grpcTLSArgs are xds's flags for its gRPC port's mutual TLS.
func (p *platform) grpcTLSArgs() []string {
	cp := p.controlPlane
	return []string{"--grpc-tls-cert-file", cp.ServerCertFile, "--grpc-tls-key-file", cp.ServerKeyFile, "--grpc-client-ca-file", cp.CAFile}
}

// envoyTLS is Envoy's side of it, for the bootstrap.
func (p *platform) envoyTLS() *envoy.TLS {
	cp := p.controlPlane
	return &envoy.TLS{CAFile: cp.CAFile, CertFile: cp.EnvoyCertFile, KeyFile: cp.EnvoyKeyFile}
}

// grpcServer is a gRPC server (for a fake ext_authz) that, like extauthz, takes only Envoy.
func (p *platform) grpcServer() (*grpc.Server, error) {
	cp := p.controlPlane
	creds, err := grpctls.Config{CertFile: cp.ServerCertFile, KeyFile: cp.ServerKeyFile, ClientCAFile: cp.CAFile}.ServerCredentials(nil)
	if err != nil {
		return nil, err
	}
	return grpc.NewServer(grpc.Creds(creds)), nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	p, cleanup, err := startPlatform()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the test platform: %v\n", err)
		cleanup()
		os.Exit(1)
	}
	edge = p
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "logs of the failed run: %s\n--- last lines of the Envoy log ---\n%s\n", p.dir, p.envoy.Tail(30))
	}
	cleanup()
	os.Exit(code)
}

func startPlatform() (*platform, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		return nil, cleanup, err
	}
	dir, err := os.MkdirTemp("", "keygate-xds-test-")
	if err != nil {
		return nil, cleanup, err
	}
	p := &platform{dir: dir, targetsFile: filepath.Join(dir, "targets.yaml"), xdsLog: &logbuf.Buffer{}, upstreams: map[string]*httptest.Server{}}

	// PKI: the edge's serving certificate, and one CA for the upstreams that also signs the
	// edge's client certificate.
	edgeCA, err := pki.NewCA("test edge CA")
	if err != nil {
		return nil, cleanup, err
	}
	serving, err := edgeCA.Server("edge", "127.0.0.1")
	if err != nil {
		return nil, cleanup, err
	}
	if p.controlPlane, err = pki.WriteControlPlane(dir, "127.0.0.1"); err != nil {
		return nil, cleanup, err
	}
	if p.upstreamCA, err = pki.NewCA("test upstream CA"); err != nil {
		return nil, cleanup, err
	}
	if p.edgeCert, err = p.upstreamCA.Client("keygate-edge"); err != nil {
		return nil, cleanup, err
	}
	for name, data := range map[string][]byte{
		"serving.crt": serving.CertPEM, "serving.key": serving.KeyPEM,
		"upstream-ca.crt": p.upstreamCA.CertPEM, "edge.crt": p.edgeCert.CertPEM, "edge.key": p.edgeCert.KeyPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, cleanup, err
		}
	}

	// Upstreams: Kubernetes-like ones over TLS that require the edge's client certificate, and
	// plain-HTTP ones for Grafana and auth.
	for _, name := range []string{"demo", "staging", "vc1"} {
		s, err := p.tlsUpstream(name)
		if err != nil {
			return nil, cleanup, err
		}
		p.upstreams[name] = s
		cleanups = append(cleanups, s.Close)
	}
	for _, name := range []string{"grafana", "auth"} {
		s := httptest.NewServer(echo(name))
		p.upstreams[name] = s
		cleanups = append(cleanups, s.Close)
	}

	if err := p.startAuthz("127.0.0.1:0"); err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() { p.authz.Stop() })

	if err := p.writeTargets(p.baseTargets()); err != nil {
		return nil, cleanup, err
	}

	// xds, in-process, on free loopback ports.
	ports, err := proc.FreePorts(4)
	if err != nil {
		return nil, cleanup, err
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	grpcAddr, listenAddr, adminAddr := addr(ports[0]), addr(ports[2]), addr(ports[3])
	p.xdsHTTP = "http://" + addr(ports[1])
	p.edgeURL = "https://" + listenAddr
	p.adminURL = "http://" + adminAddr
	xdsLogFile, err := os.Create(filepath.Join(dir, "xds.log"))
	if err != nil {
		return nil, cleanup, err
	}
	p.xdsArgs = append([]string{
		"--targets-file", p.targetsFile,
		"--grpc-address", grpcAddr, "--http-address", addr(ports[1]), "--listen-address", listenAddr,
		"--tls-cert-file", filepath.Join(dir, "serving.crt"), "--tls-key-file", filepath.Join(dir, "serving.key"),
		"--log-format", "text", "--log-level", "debug",
		// Short, so that limits_test.go sees them act; the defaults are 10s and 5m.
		"--request-headers-timeout", limitTimeout.String(), "--stream-idle-timeout", limitTimeout.String(),
	}, p.grpcTLSArgs()...)
	p.xdsOut = io.MultiWriter(xdsLogFile, p.xdsLog)
	if err := p.startXDS(); err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() {
		if err := p.stopXDS(); err != nil {
			fmt.Fprintf(os.Stderr, "xds: %v\n", err)
		}
		xdsLogFile.Close()
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()

	// Envoy.
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "xds-test", AdminAddress: adminAddr, XDSAddress: grpcAddr, ExtAuthzAddress: p.authzAddr, TLS: p.envoyTLS()})
	if err != nil {
		return nil, cleanup, err
	}
	bootstrapFile := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrapFile, bootstrap, 0o644); err != nil {
		return nil, cleanup, err
	}
	p.envoy, err = proc.Start("envoy", dir, nil, envoyBin, "-c", bootstrapFile,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "info")
	if err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() { p.envoy.Stop(10 * time.Second) })
	// /ready answers 200 once Envoy has its listener and routes from xds.
	if err := proc.WaitFor(wctx, p.envoy, "Envoy", proc.HTTPReady(p.adminURL+"/ready")); err != nil {
		return nil, cleanup, err
	}
	if err := proc.WaitFor(wctx, p.envoy, "Envoy's HTTPS listener", proc.TCPReady(listenAddr)); err != nil {
		return nil, cleanup, err
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(edgeCA.CertPEM)
	p.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
	}
	return p, cleanup, nil
}

// startXDS runs xds with p.xdsArgs and waits until it is ready.
func (p *platform) startXDS() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p.xdsArgs, p.xdsOut) }()
	p.stopXDS = func() error {
		cancel()
		return <-done
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := proc.WaitFor(wctx, nil, "xds", proc.HTTPReady(p.xdsHTTP+"/readyz")); err != nil {
		return fmt.Errorf("%w\n%s", err, p.xdsLog)
	}
	return nil
}

// startAuthz starts the fake ext_authz on addr.
func (p *platform) startAuthz(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if p.authz, err = p.grpcServer(); err != nil {
		l.Close()
		return err
	}
	authv3.RegisterAuthorizationServer(p.authz, fakeAuthz{})
	p.authzAddr = l.Addr().String()
	go p.authz.Serve(l)
	return nil
}

// tlsUpstream is an HTTPS echo server that only talks to clients with a certificate from the
// upstream CA: the edge must present its own credential.
func (p *platform) tlsUpstream(name string) (*httptest.Server, error) {
	cert, err := p.upstreamCA.Server(name, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	tc, err := cert.TLS()
	if err != nil {
		return nil, err
	}
	s := httptest.NewUnstartedServer(echo(name))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{tc}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.upstreamCA.Pool()}
	s.StartTLS()
	return s, nil
}

// echoed is what an upstream saw of a request.
type echoed struct {
	Upstream   string      `json:"upstream"`
	Method     string      `json:"method"`
	RequestURI string      `json:"requestURI"`
	Host       string      `json:"host"`
	Header     http.Header `json:"header"`
	ClientCN   string      `json:"clientCN"`
}

// echo answers with what it saw; an SPDY/3.1 upgrade (kubectl exec) is accepted and then echoes
// bytes back.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "SPDY/3.1") {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
			rw.Flush()
			line, err := rw.ReadString('\n')
			if err == nil {
				fmt.Fprintf(rw, "%s says %s", name, line)
				rw.Flush()
			}
			return
		}
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil && d < time.Minute {
			time.Sleep(d) // an upstream that keeps a request idle, as a watch with no events does
		}
		e := echoed{Upstream: name, Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			e.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(e)
	})
}

// fakeAuthz allows every request but those with the key "Bearer test-deny", and passes the route's target (its
// context extensions) to the upstream as x-test-target, so tests see what ext_authz was told.
// denyKey is the Authorization header fakeAuthz refuses.
const denyKey = "Bearer test-deny"

type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (fakeAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"] == denyKey {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(codes.Unauthenticated)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Body:   "denied by the test",
			}},
		}, nil
	}
	ext := req.GetAttributes().GetContextExtensions()
	ref, _, _ := edgepath.FromContextExtensions(ext)
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-test-target", Value: ref.String() + " " + ext[edgepath.ExtPrefix]}}},
		}},
	}, nil
}

// targets is the content of the targets file, as the tests edit it.
type targets struct {
	clusters []string // names of TLS upstreams served as connected clusters
	raw      string   // if set, written as it is
}

func (p *platform) baseTargets() targets { return targets{clusters: []string{"demo"}} }

func (p *platform) render(t targets) string {
	if t.raw != "" {
		return t.raw
	}
	var b strings.Builder
	fmt.Fprintf(&b, "auth: {url: %q}\n", p.upstreams["auth"].URL)
	b.WriteString("clusters:\n")
	for _, name := range t.clusters {
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    caFile: upstream-ca.crt\n    clientCertFile: edge.crt\n    clientKeyFile: edge.key\n", name, p.upstreams[name].URL)
		if name == "demo" {
			fmt.Fprintf(&b, "    grafana: {url: %q}\n", p.upstreams["grafana"].URL)
		}
	}
	fmt.Fprintf(&b, "virtualClusters:\n  - {name: vc1, namespace: vcluster-demo, cluster: demo, url: %q, caFile: upstream-ca.crt, clientCertFile: edge.crt, clientKeyFile: edge.key}\n", p.upstreams["vc1"].URL)
	return b.String()
}

// writeTargets replaces the targets file atomically, as operators and `make run` do.
func (p *platform) writeTargets(t targets) error {
	tmp := p.targetsFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(p.render(t)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.targetsFile)
}

// response is what a client got from the edge.
type response struct {
	status int
	header http.Header
	body   []byte
	proto  string
}

func (r response) echoed(t *testing.T) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("response %d is not from an echo upstream: %v\n%s", r.status, err, r.body)
	}
	return e
}

// get sends a GET to the edge; path is sent as it is (no cleaning by the client).
func (p *platform) get(t *testing.T, path string, header map[string]string) response {
	t.Helper()
	r, err := p.try(path, header)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitStatus waits until GET path through the edge answers status (what, in the failure).
func (p *platform) waitStatus(t *testing.T, what, path string, status int) {
	t.Helper()
	eventually(t, what, func() error {
		r, err := p.try(path, nil)
		if err != nil {
			return err
		}
		if r.status != status {
			return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
		return nil
	})
}

func (p *platform) try(path string, header map[string]string) (response, error) {
	req, err := http.NewRequest(http.MethodGet, p.edgeURL+path, nil)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body, proto: resp.Proto}, nil
}

// eventually polls cond until it returns nil, for at most 20s.
func eventually(t *testing.T, what string, cond func() error) {
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
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRouting(t *testing.T) {
	demoHost := strings.TrimPrefix(edge.upstreams["demo"].URL, "https://")
	tests := map[string]struct {
		path       string
		upstream   string
		requestURI string
		target     string // what ext_authz was told, "" for public routes (no check)
	}{
		"prefix stripped, query kept": {"/kubernetes/cluster/demo/api/v1/pods?watch=1&resourceVersion=10", "demo", "/api/v1/pods?watch=1&resourceVersion=10", `cluster "demo" /kubernetes/cluster/demo/`},
		"prefix without slash":        {"/kubernetes/cluster/demo", "demo", "/", `cluster "demo" /kubernetes/cluster/demo/`},
		"prefix with slash":           {"/kubernetes/cluster/demo/", "demo", "/", `cluster "demo" /kubernetes/cluster/demo/`},
		"virtual cluster":             {"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/version", "vc1", "/version", `virtual cluster "vc1" in namespace "vcluster-demo" of cluster "demo" /kubernetes/virtualcluster/demo/vcluster-demo/vc1/`},
		"grafana":                     {"/grafana/demo/api/health", "grafana", "/api/health", `grafana of cluster "demo" /grafana/demo/`},
		"public auth":                 {"/auth/password/login", "auth", "/password/login", ""},
		"dot segments are resolved":   {"/kubernetes/cluster/staging/../demo/api", "demo", "/api", `cluster "demo" /kubernetes/cluster/demo/`},
		"slashes are merged":          {"//kubernetes//cluster/demo//api", "demo", "/api", `cluster "demo" /kubernetes/cluster/demo/`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The scope header is the edge's own: a client's value changes nothing and never
			// reaches an upstream. Nor does any identity header a client could forge, on any
			// route, though this ext_authz removes nothing: the listener strips them.
			r := edge.get(t, tc.path, map[string]string{"Authorization": "Bearer test-key", "Impersonate_User": "admin", "X-Custom": "kept",
				translate.ScopeHeader: "grafana/demo", "Impersonate-User": "admin", "Impersonate-Group": "system:masters",
				"Impersonate-Extra-Scopes": "all", "X-Remote-User": "root", "X-Remote-Group": "system:masters",
				"X-WEBAUTH-USER": "admin", "X-Webauth-Role": "Admin", "x-webauth-groups": "admins"})
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, r.status, r.body)
			}
			e := r.echoed(t)
			if e.Upstream != tc.upstream || e.RequestURI != tc.requestURI {
				t.Errorf("GET %s reached %s as %q, want %s as %q", tc.path, e.Upstream, e.RequestURI, tc.upstream, tc.requestURI)
			}
			if got := e.Header.Get("X-Test-Target"); got != tc.target {
				t.Errorf("ext_authz was told %q, want %q", got, tc.target)
			}
			if v := e.Header.Values(translate.ScopeHeader); len(v) != 0 {
				t.Errorf("the upstream got %s: %v", translate.ScopeHeader, v)
			}
			if e.Header.Get("X-Custom") != "kept" {
				t.Errorf("an ordinary header did not reach the upstream: %v", e.Header)
			}
			if _, ok := e.Header["Impersonate_user"]; ok || e.Header.Get("Impersonate-User") != "" {
				t.Errorf("a header with an underscore reached the upstream: %v", e.Header)
			}
			for name, values := range e.Header {
				if edgepath.StrippedByEdge(name) {
					t.Errorf("the client's %s reached the upstream: %v", name, values)
				}
			}
			// The route names its target in the answer; public routes name none.
			want := ""
			if f := strings.Fields(tc.target); len(f) > 0 {
				want = strings.Trim(f[len(f)-1], "/")
			}
			if got := r.header.Get(edgepath.TargetHeader); got != want {
				t.Errorf("%s: %q, want %q", edgepath.TargetHeader, got, want)
			}
			auth := e.Header.Get("Authorization")
			if public := tc.target == ""; public && auth != "Bearer test-key" {
				t.Errorf("public route: upstream got Authorization %q, want the client's", auth)
			} else if !public && auth != "" {
				t.Errorf("authenticated route: the access key reached the upstream (%q)", auth)
			}
			if tc.upstream == "demo" {
				if e.Host != demoHost {
					t.Errorf("upstream saw Host %q, want %q", e.Host, demoHost)
				}
				if e.ClientCN != "keygate-edge" {
					t.Errorf("upstream saw client certificate %q, want the edge's", e.ClientCN)
				}
			}
		})
	}
}

func TestHTTP2(t *testing.T) {
	r := edge.get(t, "/kubernetes/cluster/demo/version", nil)
	if r.status != http.StatusOK || r.proto != "HTTP/2.0" {
		t.Errorf("got %d over %s, want 200 over HTTP/2.0 (ALPN h2)", r.status, r.proto)
	}
}

func TestNotFound(t *testing.T) {
	tests := map[string]struct {
		path   string
		header map[string]string
		status int
		body   string
	}{
		"unknown path":                   {"/api/v1/pods", nil, http.StatusNotFound, translate.NotFoundBody},
		"unknown cluster":                {"/kubernetes/cluster/nope/api", nil, http.StatusNotFound, translate.NotFoundBody},
		"unknown virtual cluster":        {"/kubernetes/virtualcluster/demo/vcluster-demo/nope/version", nil, http.StatusNotFound, translate.NotFoundBody},
		"scope header of another target": {"/kubernetes/cluster/nope/api", map[string]string{translate.ScopeHeader: "cluster/demo"}, http.StatusNotFound, translate.NotFoundBody},
		"grafana of a cluster without":   {"/grafana/vc1/", nil, http.StatusNotFound, translate.NotFoundBody},
		"unknown path without a key":     {"/kubernetes/cluster/nope/api", map[string]string{"authorization": denyKey}, http.StatusUnauthorized, "denied by the test"},
		"known cluster without a key":    {"/kubernetes/cluster/demo/api", map[string]string{"authorization": denyKey}, http.StatusUnauthorized, "denied by the test"},
		"public route needs no key":      {"/auth/logout", map[string]string{"authorization": denyKey}, http.StatusOK, ""},
		"escaped slash is refused":       {"/kubernetes/cluster/demo%2Fapi", nil, http.StatusBadRequest, ""},
		"escaped slash in a known route": {"/kubernetes/cluster/demo/api%2F..%2F..%2Fstaging", nil, http.StatusBadRequest, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := edge.get(t, tc.path, tc.header)
			if r.status != tc.status {
				t.Fatalf("GET %s: %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
			if tc.body != "" && string(r.body) != tc.body {
				t.Errorf("body %q, want %q", r.body, tc.body)
			}
			if tc.body == translate.NotFoundBody {
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content-type %q, want application/json", ct)
				}
			}
		})
	}
}

// TestSPDYUpgrade is what kubectl exec and port-forward need: an HTTP/1.1 upgrade to SPDY/3.1
// through the edge, then bytes both ways.
func TestSPDYUpgrade(t *testing.T) {
	host := strings.TrimPrefix(edge.edgeURL, "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: edge.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /kubernetes/cluster/demo/api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade answered %d %s", resp.StatusCode, body)
	}
	fmt.Fprint(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "demo says hello\n" {
		t.Errorf("upgraded stream echoed %q", line)
	}
}

// TestTargetsFileEdits edits the targets file under a running Envoy: a cluster appears, goes
// away, and a bad edit changes nothing.
func TestTargetsFileEdits(t *testing.T) {
	t.Cleanup(func() {
		if err := edge.writeTargets(edge.baseTargets()); err != nil {
			t.Error(err)
		}
	})
	routesTo := func(path, upstream string) func() error {
		return func() error {
			r, err := edge.try(path, nil)
			if err != nil {
				return err
			}
			var e echoed
			if r.status != http.StatusOK || json.Unmarshal(r.body, &e) != nil || e.Upstream != upstream {
				return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
			return nil
		}
	}
	notFound := func(path string) func() error {
		return func() error {
			r, err := edge.try(path, nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusNotFound {
				return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
			return nil
		}
	}

	if err := notFound("/kubernetes/cluster/staging/api")(); err != nil {
		t.Fatalf("before the edit: %v", err)
	}
	if err := edge.writeTargets(targets{clusters: []string{"demo", "staging"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "staging routed after adding it", routesTo("/kubernetes/cluster/staging/api", "staging"))
	if err := routesTo("/kubernetes/cluster/demo/api", "demo")(); err != nil {
		t.Errorf("demo after adding staging: %v", err)
	}

	// A bad edit: refused, logged, counted; every route keeps serving.
	invalidBefore := edge.metric(t, `keygate_xds_config_reloads_total{result="invalid"}`)
	logBefore := len(edge.xdsLog.String())
	if err := edge.writeTargets(targets{raw: "clusters:\n  - name: staging\n    url: https://127.0.0.1:1\n    cafile: typo.crt\n"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad edit is counted", func() error {
		if got := edge.metric(t, `keygate_xds_config_reloads_total{result="invalid"}`); got != invalidBefore+1 {
			return fmt.Errorf("reloads{result=invalid} = %v, want %v", got, invalidBefore+1)
		}
		return nil
	})
	if log := edge.xdsLog.String()[logBefore:]; !strings.Contains(log, `level=ERROR msg="targets file refused; the last good targets stay in force"`) ||
		!strings.Contains(log, `unknown field \"clusters[0].cafile\"`) {
		t.Errorf("the xds log does not explain the refusal:\n%s", log)
	}
	for _, c := range []string{"demo", "staging"} {
		if err := routesTo("/kubernetes/cluster/"+c+"/api", c)(); err != nil {
			t.Errorf("after the bad edit: %v", err)
		}
	}

	// Removing staging removes its route.
	if err := edge.writeTargets(targets{clusters: []string{"demo"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "staging gone after removing it", notFound("/kubernetes/cluster/staging/api"))
	if err := routesTo("/kubernetes/cluster/demo/api", "demo")(); err != nil {
		t.Errorf("demo after removing staging: %v", err)
	}
}

// TestEnvoyAcceptedEveryConfiguration reads Envoy's own counters: every listener, route and
// cluster update xds sent was accepted (no NACK). It runs after the edits above.
func TestEnvoyAcceptedEveryConfiguration(t *testing.T) {
	stats := edge.envoyStats(t)
	for _, prefix := range []string{"cluster_manager.cds", "listener_manager.lds", "http.edge.rds.edge"} {
		if got, ok := stats[prefix+".update_rejected"]; !ok || got != 0 {
			t.Errorf("%s.update_rejected = %d (present %v), want 0", prefix, got, ok)
		}
		if got := stats[prefix+".update_success"]; got == 0 {
			t.Errorf("%s.update_success = 0, want > 0", prefix)
		}
	}
	if got := edge.metric(t, `keygate_xds_nacks_total{type="cluster"}`) + edge.metric(t, `keygate_xds_nacks_total{type="listener"}`) + edge.metric(t, `keygate_xds_nacks_total{type="route"}`); got != 0 {
		t.Errorf("xds counted %v NACKs, want 0", got)
	}
	if got := edge.metric(t, "keygate_xds_connected_envoys"); got != 1 {
		t.Errorf("keygate_xds_connected_envoys = %v, want 1", got)
	}
}

// TestExtAuthzDownFailsClosed: with ext_authz unreachable, nothing gets through and clients see
// 503 (an outage), not 403 or 200.
func TestExtAuthzDownFailsClosed(t *testing.T) {
	const path = "/kubernetes/cluster/demo/api"
	edge.authz.Stop()
	t.Cleanup(func() {
		if err := edge.startAuthz(edge.authzAddr); err != nil {
			t.Fatalf("restart ext_authz: %v", err)
		}
		eventually(t, "requests pass again after ext_authz is back", func() error {
			r, err := edge.try(path, nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusOK {
				return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
			return nil
		})
	})
	for _, p := range []string{path, "/nope", "/kubernetes/cluster/demo"} {
		r := edge.get(t, p, nil)
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s with ext_authz down: %d %s, want 503", p, r.status, r.body)
		}
	}
}

func TestOpsEndpoints(t *testing.T) {
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(edge.xdsHTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if got := edge.metric(t, `keygate_xds_targets{kind="cluster"}`); got < 1 {
		t.Errorf(`keygate_xds_targets{kind="cluster"} = %v, want at least 1`, got)
	}
}

// envoyStats reads Envoy's counters from its admin interface.
func (p *platform) envoyStats(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(p.adminURL + "/stats?filter=update_")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stats := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if n, err := strconv.Atoi(value); ok && err == nil {
			stats[name] = n
		}
	}
	return stats
}

// metric reads one sample from xds's /metrics, by its name and labels as exposed.
func (p *platform) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(p.xdsHTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}
