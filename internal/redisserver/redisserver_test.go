package redisserver

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/pki"
)

// A transaction acknowledged by a TLS-only Redis with ACL users survives a crash: Redis 7.0
// replays the append-only file's MULTI/EXEC with the default user's rights, so the default user,
// though off, must keep them (e2e's Redis restart test found the loss). The default user lets
// no client in.
func TestCrashKeepsTransactionsWithACLUsers(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("redisserver-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(ctx, Options{Dir: t.TempDir(), AppendOnly: true, TLS: ca, Users: map[string]string{"u": "correct-horse"}})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS: %v", err)
	}
	defer srv.Stop()
	pair, err := ca.Client("u")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer rdb.Close()
	// Two writes: Redis propagates a transaction of one write without MULTI/EXEC.
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.Set(ctx, "b", "2", 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.MGet(ctx, "a", "b").Result(); err != nil || len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("after the crash: %v, %v; want the acknowledged transaction's writes", got, err)
	}
	anonymous := redis.NewClient(&redis.Options{Addr: srv.Addr, TLSConfig: conf, MaxRetries: -1})
	defer anonymous.Close()
	if err := anonymous.Get(ctx, "a").Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Errorf("a client that does not log in: %v, want NOAUTH", err)
	}
}
