package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/grpctls/grpctlstest"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// tlsArgs are the gRPC port's TLS flags, added to every command line of parseFlagsCases but
// those marked noTLS.
var tlsArgs = []string{"--grpc-tls-cert-file", "s.crt", "--grpc-tls-key-file", "s.key", "--grpc-client-ca-file", "ca.crt"}

type parseFlagsCase struct {
	args    []string
	env     map[string]string
	check   func(Config) bool
	wantErr string
	noTLS   bool
}

// TestParseTLSFlags: the gRPC port serves mutual TLS, or plaintext on loopback only.
func TestParseTLSFlags(t *testing.T) {
	parseFlagsCases(t, map[string]parseFlagsCase{
		"tls": {check: func(c Config) bool {
			return c.GRPCTLS == grpctls.Config{CertFile: "s.crt", KeyFile: "s.key", ClientCAFile: "ca.crt"}
		}},
		"tls from env": {noTLS: true, args: []string{"--grpc-tls-key-file", "flag.key"}, env: map[string]string{"EXTAUTHZ_GRPC_TLS_CERT_FILE": "env.crt", "EXTAUTHZ_GRPC_TLS_KEY_FILE": "env.key", "EXTAUTHZ_GRPC_CLIENT_CA_FILE": "env-ca.crt"},
			check: func(c Config) bool {
				return c.GRPCTLS == grpctls.Config{CertFile: "env.crt", KeyFile: "flag.key", ClientCAFile: "env-ca.crt"}
			}},
		"no tls":                         {noTLS: true, wantErr: "--grpc-tls-cert-file is required: the gRPC port serves only mutual TLS"},
		"plaintext on loopback":          {noTLS: true, args: []string{"--grpc-insecure-loopback", "--grpc-address", "localhost:19000"}, check: func(c Config) bool { return c.GRPCTLS.InsecureLoopback }},
		"plaintext on every interface":   {noTLS: true, args: []string{"--grpc-insecure-loopback", "--grpc-address", "0.0.0.0:19000"}, wantErr: `--grpc-insecure-loopback is refused with --grpc-address "0.0.0.0:19000": plaintext gRPC is allowed on a loopback address only`},
		"plaintext from env on a pod IP": {noTLS: true, args: []string{"--grpc-address", "10.1.2.3:19000"}, env: map[string]string{"EXTAUTHZ_GRPC_INSECURE_LOOPBACK": "true"}, wantErr: "allowed on a loopback address only"},
	})
}

func TestParseFlags(t *testing.T) {
	parseFlagsCases(t, map[string]parseFlagsCase{
		"defaults": {check: func(c Config) bool {
			return c.GRPCAddress == "127.0.0.1:19000" && len(c.RedisAddresses) == 1 && c.GrafanaUserHeader == "X-WEBAUTH-USER" && c.MaxTTL == 0 && c.ActivityFlushInterval == 10*time.Second
		}},
		"cluster addresses": {args: []string{"--redis-address", "a:1, b:2"}, check: func(c Config) bool {
			return strings.Join(c.RedisAddresses, ",") == "a:1,b:2"
		}},
		"max ttl from env":         {env: map[string]string{"EXTAUTHZ_MAX_TTL": "720h"}, check: func(c Config) bool { return c.MaxTTL == 720*time.Hour }},
		"address without port":     {args: []string{"--redis-address", "redis"}, wantErr: `--redis-address "redis": want host:port`},
		"redis password as a flag": {args: []string{"--redis-password", "hunter22"}, wantErr: "--redis-password is never taken on the command line (it would show in shell history and ps): put it in a file named by --redis-password-file, or set the environment variable EXTAUTHZ_REDIS_PASSWORD"},
		"redis user and tls from env": {env: map[string]string{"EXTAUTHZ_REDIS_PASSWORD": "pw", "EXTAUTHZ_REDIS_USERNAME": "extauthz", "EXTAUTHZ_REDIS_TLS": "true"}, check: func(c Config) bool {
			o := c.Options()
			return o.Username == "extauthz" && o.Password == "pw" && o.TLSConfig != nil
		}},
		"negative max ttl":         {args: []string{"--max-ttl", "-1h"}, wantErr: "--max-ttl must not be negative"},
		"bad duration in env":      {env: map[string]string{"EXTAUTHZ_MAX_TTL": "forever"}, wantErr: "EXTAUTHZ_MAX_TTL (flag --max-ttl)"},
		"stray argument":           {args: []string{"serve"}, wantErr: "unexpected arguments"},
		"flush interval from env":  {env: map[string]string{"EXTAUTHZ_ACTIVITY_FLUSH_INTERVAL": "1m"}, check: func(c Config) bool { return c.ActivityFlushInterval == time.Minute }},
		"flush interval too short": {args: []string{"--activity-flush-interval", "0s"}, wantErr: "--activity-flush-interval 0s: want at least 100ms"},
		"key cache from env":       {env: map[string]string{"EXTAUTHZ_KEY_CACHE_SIZE": "0", "EXTAUTHZ_KEY_CACHE_TTL": "5s"}, check: func(c Config) bool { return c.KeyCacheSize == 0 && c.KeyCacheTTL == 5*time.Second }},
		"key cache defaults":       {check: func(c Config) bool { return c.KeyCacheSize == 100_000 && c.KeyCacheTTL == 30*time.Second }},
		"negative key cache size":  {args: []string{"--key-cache-size", "-1"}, wantErr: "--key-cache-size -1: want 0 (off) or more"},
		"key cache ttl too short":  {args: []string{"--key-cache-ttl", "10ms"}, wantErr: "--key-cache-ttl 10ms: want at least 1s"},
		"digest lease by default":  {check: func(c Config) bool { return c.DigestLease == time.Second }},
		"digest lease from env":    {env: map[string]string{"EXTAUTHZ_DIGEST_LEASE": "0"}, check: func(c Config) bool { return c.DigestLease == 0 }},
		"digest lease too short":   {args: []string{"--digest-lease", "10ms"}, wantErr: "--digest-lease 10ms: want 0 (none) or 100ms to 10s"},
		"digest lease too long":    {args: []string{"--digest-lease", "1m"}, wantErr: "--digest-lease 1m0s: want 0 (none) or 100ms to 10s"},
		"empty grafana header":     {args: []string{"--grafana-user-header="}, wantErr: "--grafana-user-header is empty"},
		"grafana auth-proxy headers by default": {check: func(c Config) bool {
			return c.GrafanaGroupsHeader == "" && strings.Join(c.GrafanaAuthProxyHeaders, ",") == "X-WEBAUTH-USER,X-WEBAUTH-EMAIL,X-WEBAUTH-NAME,X-WEBAUTH-LOGIN,X-WEBAUTH-ROLE,X-WEBAUTH-GROUPS"
		}},
		"grafana headers from env": {env: map[string]string{"EXTAUTHZ_GRAFANA_AUTH_PROXY_HEADERS": "X-User, X-Role", "EXTAUTHZ_GRAFANA_GROUPS_HEADER": "X-Groups"}, check: func(c Config) bool {
			return strings.Join(c.GrafanaAuthProxyHeaders, ",") == "X-User,X-Role" && c.GrafanaGroupsHeader == "X-Groups"
		}},
		"empty grafana auth-proxy headers": {args: []string{"--grafana-auth-proxy-headers", " , "}, wantErr: "--grafana-auth-proxy-headers is empty"},
		"no pprof by default":              {check: func(c Config) bool { return c.PprofAddress == "" }},
		"pprof from env":                   {env: map[string]string{"EXTAUTHZ_PPROF_ADDRESS": "127.0.0.1:19002"}, check: func(c Config) bool { return c.PprofAddress == "127.0.0.1:19002" }},
		"pprof beyond loopback":            {args: []string{"--pprof-address", "0.0.0.0:19002"}, wantErr: `--pprof-address "0.0.0.0:19002": profiles are served on a loopback address only`},
		"pprof on a port alone":            {args: []string{"--pprof-address", ":19002"}, check: func(c Config) bool { return c.PprofAddress == "127.0.0.1:19002" }},
		"grafana header with a space":      {args: []string{"--grafana-groups-header", "X Groups"}, wantErr: `Grafana header "X Groups": not an HTTP header name`},
	})
}

func parseFlagsCases(t *testing.T, tests map[string]parseFlagsCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if !tc.noTLS {
				args = append(args, tlsArgs...)
			}
			c, err := ParseFlags(args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

// A use in the last flush interval before a shutdown still reaches status.lastActivity: the
// recorder flushes once more after the gRPC server has stopped.
func TestShutdownFlushesActivity(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("this test needs a real Redis (make tools installs one): %v", err)
	}
	defer srv.Stop()
	keys := store.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	plain, err := keys.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "shutdown"}, Spec: v1.OwnedAccessKeySpec{User: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	x := startExtAuthz(t, srv.Addr, "--activity-flush-interval", "1h")
	conn, err := grpc.NewClient(x.addr, grpc.WithTransportCredentials(credentials.NewTLS(x.envoy)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}.ContextExtensions(),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Path: "/kubernetes/cluster/demo/api", Headers: map[string]string{"authorization": "Bearer " + plain}}},
	}}
	if resp, err := checkOnceUp(ctx, conn, req); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	before := time.Now().Add(-time.Second)
	if err := x.stop(); err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	k, err := keys.Get(ctx, "shutdown")
	if err != nil {
		t.Fatal(err)
	}
	if k.Status.LastActivity == nil || k.Status.LastActivity.Before(&metav1.Time{Time: before.Add(-time.Minute)}) {
		t.Errorf("lastActivity after shutdown = %v; want the use just made", k.Status.LastActivity)
	}
}

// running is an extauthz started by startExtAuthz.
type running struct {
	addr  string
	http  string // /metrics, /healthz and /readyz
	cp    *pki.ControlPlane
	envoy *tls.Config // Envoy's side of the mutual TLS
	stop  func() error
}

// startExtAuthz runs extauthz (this package's Run) on Redis at redisAddr with mutual TLS, as
// the edge runs it; more are further flags. It stops with the test, if not before.
func startExtAuthz(t *testing.T, redisAddr string, more ...string) *running {
	t.Helper()
	cp, err := pki.WriteControlPlane(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ports, err := proc.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	x := &running{addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), http: fmt.Sprintf("127.0.0.1:%d", ports[1]), cp: cp}
	if x.envoy, err = grpctls.ClientConfig(cp.CAFile, cp.EnvoyCertFile, cp.EnvoyKeyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	c, err := ParseFlags(append([]string{"--redis-address", redisAddr, "--grpc-address", x.addr,
		"--http-address", x.http,
		"--grpc-tls-cert-file", cp.ServerCertFile, "--grpc-tls-key-file", cp.ServerKeyFile, "--grpc-client-ca-file", cp.CAFile}, more...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	var once sync.Once
	var runErr error
	x.stop = func() error { once.Do(func() { cancel(); runErr = <-done }); return runErr }
	t.Cleanup(func() { _ = x.stop() })
	return x
}

// checkOnceUp calls Check until extauthz, just started, answers; the deadline only bounds a
// broken test.
func checkOnceUp(ctx context.Context, conn *grpc.ClientConn, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req, grpc.WaitForReady(true))
		if err == nil || time.Now().After(deadline) {
			return resp, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCheckRefusesStrangers is the attack of issue 13 on the ext_authz port: with a valid
// access key, a client that reaches the port asks Check (to learn whether a stolen key works,
// or to read the identity headers). Envoy's certificate gets the answer; no client
// certificate, one from another CA, or plaintext get no connection, and the TLS alert says why.
func TestCheckRefusesStrangers(t *testing.T) {
	ctx := context.Background()
	srv, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("this test needs a real Redis (make tools installs one): %v", err)
	}
	defer srv.Stop()
	keys := store.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	plain, err := keys.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "stolen"}, Spec: v1.OwnedAccessKeySpec{User: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	x := startExtAuthz(t, srv.Addr)
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}.ContextExtensions(),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Path: "/kubernetes/cluster/demo/api", Headers: map[string]string{"authorization": "Bearer " + plain}}},
	}}
	envoyConn, err := grpc.NewClient(x.addr, grpc.WithTransportCredentials(credentials.NewTLS(x.envoy)))
	if err != nil {
		t.Fatal(err)
	}
	defer envoyConn.Close()
	if resp, err := checkOnceUp(ctx, envoyConn, req); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Envoy's certificate: Check = %v, %v; want allowed", resp, err)
	}

	strangers, err := grpctlstest.Strangers(x.cp.CAFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strangers {
		t.Run(s.Name, func(t *testing.T) {
			conn, err := grpc.NewClient(x.addr, grpc.WithTransportCredentials(s.Creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
			t.Logf("Check fails with: %v", err)
			if resp != nil || status.Code(err) != codes.Unavailable {
				t.Errorf("Check = %v, %v; want no answer, Unavailable (no connection)", resp, err)
			}
			if s.TLS == nil {
				return
			}
			if err := grpctlstest.Refusal(x.addr, s.TLS); err == nil || !strings.Contains(err.Error(), s.Alert) {
				t.Errorf("TLS handshake: %v, want the server's alert %q", err, s.Alert)
			}
		})
	}
}
