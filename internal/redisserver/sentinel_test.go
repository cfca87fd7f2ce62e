package redisserver

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/pki"
)

// A TLS-only master with ACL users, its replica and a Sentinel: the replica logs in and copies
// the master's writes, and the Sentinel names the master to a client that asks it over TLS. The
// peers show a client certificate of their own (tls-auth-clients), which this proves works.
func TestReplicaAndSentinel(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("redisserver-sentinel-ca")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"u": "correct-horse"}
	master, err := Start(ctx, Options{Dir: t.TempDir(), TLS: ca, Users: users})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS: %v", err)
	}
	defer master.Stop()
	replica, err := Start(ctx, Options{Dir: t.TempDir(), TLS: ca, Users: users, ReplicaOf: master.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop()
	sentinel, err := Start(ctx, Options{Dir: t.TempDir(), TLS: ca, Users: users, Sentinel: &SentinelOf{MasterName: "m", Master: master.Addr, Quorum: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer sentinel.Stop()
	conf := clientTLS(t, ca)
	m := redis.NewClient(&redis.Options{Addr: master.Addr, Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer m.Close()
	if err := m.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Do(ctx, "WAIT", 1, 10000).Int64(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas, %v; want the replica to have the write", n, err)
	}
	r := redis.NewClient(&redis.Options{Addr: replica.Addr, Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer r.Close()
	if got, err := r.Get(ctx, "a").Result(); err != nil || got != "1" {
		t.Errorf("the replica has a = %q, %v; want 1", got, err)
	}
	s := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr, TLSConfig: conf})
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second) // a bound on a hung run, not a measurement
	for {
		addr, err := s.GetMasterAddrByName(ctx, "m").Result()
		if err == nil && len(addr) == 2 && addr[0]+":"+addr[1] == master.Addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinel names %v, %v; want %s", addr, err, master.Addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func clientTLS(t *testing.T, ca *pki.CA) *tls.Config {
	t.Helper()
	pair, err := ca.Client("u")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pair.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
