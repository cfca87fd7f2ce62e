package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

func TestParseFlags(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		"defaults": {check: func(c Config) bool {
			return c.GRPCAddress == "127.0.0.1:19000" && len(c.RedisAddresses) == 1 && c.GrafanaUserHeader == "X-WEBAUTH-USER" && c.MaxTTL == 0 && c.ActivityFlushInterval == 10*time.Second
		}},
		"cluster addresses": {args: []string{"--redis-address", "a:1, b:2"}, check: func(c Config) bool {
			return strings.Join(c.RedisAddresses, ",") == "a:1,b:2"
		}},
		"max ttl from env":         {env: map[string]string{"EXTAUTHZ_MAX_TTL": "720h"}, check: func(c Config) bool { return c.MaxTTL == 720*time.Hour }},
		"address without port":     {args: []string{"--redis-address", "redis"}, wantErr: `--redis-address "redis": want host:port`},
		"negative max ttl":         {args: []string{"--max-ttl", "-1h"}, wantErr: "--max-ttl must not be negative"},
		"bad duration in env":      {env: map[string]string{"EXTAUTHZ_MAX_TTL": "forever"}, wantErr: "EXTAUTHZ_MAX_TTL (flag --max-ttl)"},
		"stray argument":           {args: []string{"serve"}, wantErr: "unexpected arguments"},
		"flush interval from env":  {env: map[string]string{"EXTAUTHZ_ACTIVITY_FLUSH_INTERVAL": "1m"}, check: func(c Config) bool { return c.ActivityFlushInterval == time.Minute }},
		"flush interval too short": {args: []string{"--activity-flush-interval", "0s"}, wantErr: "--activity-flush-interval 0s: want at least 100ms"},
		"key cache from env":       {env: map[string]string{"EXTAUTHZ_KEY_CACHE_SIZE": "0", "EXTAUTHZ_KEY_CACHE_TTL": "5s"}, check: func(c Config) bool { return c.KeyCacheSize == 0 && c.KeyCacheTTL == 5*time.Second }},
		"key cache defaults":       {check: func(c Config) bool { return c.KeyCacheSize == 100_000 && c.KeyCacheTTL == 30*time.Second }},
		"negative key cache size":  {args: []string{"--key-cache-size", "-1"}, wantErr: "--key-cache-size -1: want 0 (off) or more"},
		"key cache ttl too short":  {args: []string{"--key-cache-ttl", "10ms"}, wantErr: "--key-cache-ttl 10ms: want at least 1s"},
		"empty grafana header":     {args: []string{"--grafana-user-header="}, wantErr: "--grafana-user-header is empty"},
		"grafana auth-proxy headers by default": {check: func(c Config) bool {
			return c.GrafanaGroupsHeader == "" && strings.Join(c.GrafanaAuthProxyHeaders, ",") == "X-WEBAUTH-USER,X-WEBAUTH-EMAIL,X-WEBAUTH-NAME,X-WEBAUTH-LOGIN,X-WEBAUTH-ROLE,X-WEBAUTH-GROUPS"
		}},
		"grafana headers from env": {env: map[string]string{"EXTAUTHZ_GRAFANA_AUTH_PROXY_HEADERS": "X-User, X-Role", "EXTAUTHZ_GRAFANA_GROUPS_HEADER": "X-Groups"}, check: func(c Config) bool {
			return strings.Join(c.GrafanaAuthProxyHeaders, ",") == "X-User,X-Role" && c.GrafanaGroupsHeader == "X-Groups"
		}},
		"empty grafana auth-proxy headers": {args: []string{"--grafana-auth-proxy-headers", " , "}, wantErr: "--grafana-auth-proxy-headers is empty"},
		"grafana header with a space":      {args: []string{"--grafana-groups-header", "X Groups"}, wantErr: `Grafana header "X Groups": not an HTTP header name`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := ParseFlags(tc.args)
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
	ports, err := proc.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	c, err := ParseFlags([]string{"--redis-address", srv.Addr, "--grpc-address", grpcAddr,
		"--http-address", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--activity-flush-interval", "1h"})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- Run(runCtx, c, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}.ContextExtensions(),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Path: "/kubernetes/cluster/demo/api", Headers: map[string]string{"authorization": "Bearer " + plain}}},
	}}
	var resp *authv3.CheckResponse
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err = authv3.NewAuthorizationClient(conn).Check(ctx, req, grpc.WaitForReady(true))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	before := time.Now().Add(-time.Second)
	stop()
	if err := <-done; err != nil {
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
