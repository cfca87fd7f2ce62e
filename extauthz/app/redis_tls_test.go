package app

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// TestRedisOverTLSWithAnACLUser runs extauthz against a real Redis that speaks only TLS, wants a
// client certificate and knows only an ACL user, as production should: with the TLS flags and
// the user's password in EXTAUTHZ_REDIS_PASSWORD, a key in that Redis is allowed; with a wrong
// password, checks fail closed (503) and /readyz says why.
func TestRedisOverTLSWithAnACLUser(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("extauthz-redis-ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir(), TLS: ca, Users: map[string]string{"extauthz": "correct-horse"}})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS (make tools installs one): %v", err)
	}
	defer srv.Stop()
	pair, err := ca.Client("extauthz")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := pair.Write(t.TempDir(), "client")
	if err != nil {
		t.Fatal(err)
	}
	plain := createKeyOverTLS(t, srv, ca, pair)
	flags := []string{"--redis-username", "extauthz", "--redis-ca-file", srv.CAFile, "--redis-client-cert-file", certFile, "--redis-client-key-file", keyFile}

	t.Setenv("EXTAUTHZ_REDIS_PASSWORD", "correct-horse")
	if resp, ready := checkAndReadyz(t, startExtAuthz(t, srv.Addr, flags...), plain); resp.GetOkResponse() == nil || ready != "ok\n" {
		t.Errorf("with the ACL user over TLS: Check = %v, /readyz %q; want allowed and ready", resp, ready)
	}
	t.Setenv("EXTAUTHZ_REDIS_PASSWORD", "battery-staple")
	resp, ready := checkAndReadyz(t, startExtAuthz(t, srv.Addr, flags...), plain)
	if resp.GetDeniedResponse().GetStatus().GetCode() != 503 || !strings.Contains(ready, "not ready: redis: WRONGPASS invalid username-password pair") {
		t.Errorf("with a wrong password: Check = %v, /readyz %q; want 503 and WRONGPASS", resp, ready)
	}
	if strings.Contains(ready, "battery-staple") {
		t.Error("/readyz shows the password")
	}
}

// createKeyOverTLS stores an access key through a client of its own, as keystore would.
func createKeyOverTLS(t *testing.T, srv *redisserver.Server, ca *pki.CA, pair pki.Pair) string {
	t.Helper()
	cert, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "extauthz", Password: "correct-horse",
		TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	defer rdb.Close()
	plain, err := store.New(rdb).Create(context.Background(), &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "over-tls"}, Spec: v1.OwnedAccessKeySpec{User: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// checkAndReadyz asks x, as Envoy would, to check a request with the key, and reads its /readyz.
func checkAndReadyz(t *testing.T, x *running, plain string) (*authv3.CheckResponse, string) {
	t.Helper()
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
	resp, err := checkOnceUp(context.Background(), conn, req)
	if err != nil {
		t.Fatal(err)
	}
	// Check answered, so the HTTP server has started too, or is about to: wait for it to listen.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := http.Get("http://" + x.http + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			return resp, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %v", err)
		}
	}
}
