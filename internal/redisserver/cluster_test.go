package redisserver

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/pki"
)

// Six TLS-only nodes with ACL users, joined by redis-cli: a Cluster client reaches keys in
// every master's slots, the nodes agree on the master of a slot and its replica, and a write
// WAITed for on the master's own connection is on that replica.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("redisserver-cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"u": "correct-horse"}
	c, err := StartCluster(ctx, ClusterOptions{Dir: t.TempDir(), Masters: 3, ReplicasPerMaster: 1, TLS: ca, Users: users})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS, and redis-cli: %v", err)
	}
	defer c.Stop()
	conf := clientTLS(t, ca)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer cc.Close()
	for _, k := range []string{"{a}", "{b}", "{c}", "{d}", "{e}"} {
		if err := cc.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatalf("SET %s through the cluster: %v", k, err)
		}
	}
	master, replicas, err := c.MasterOf(ctx, "{a}")
	if err != nil || len(replicas) != 1 {
		t.Fatalf("MasterOf({a}) = %v, %v, %v; want a master and one replica", master, replicas, err)
	}
	m := redis.NewClient(&redis.Options{Addr: master.Addr, Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer m.Close()
	conn := m.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "{a}", "2", 0).Err(); err != nil {
		t.Fatalf("SET {a} on its master %s: %v", master.Addr, err)
	}
	if n, err := conn.Wait(ctx, 1, 10000).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on the master: %d, %v", n, err)
	}
	r := redis.NewClient(&redis.Options{Addr: replicas[0].Addr, Username: "u", Password: "correct-horse", TLSConfig: conf})
	defer r.Close()
	rc := r.Conn() // READONLY holds for its connection only
	defer rc.Close()
	if err := rc.ReadOnly(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.Get(ctx, "{a}").Result(); err != nil || got != "2" {
		t.Errorf("the replica has {a} = %q, %v; want 2", got, err)
	}
}
