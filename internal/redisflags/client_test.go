package redisflags

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/redisserver"
)

// A Cluster client of NewClient follows a failover: after the master of a slot is killed, a
// read of that slot is answered again soon after the replica's promotion (seconds), not after
// go-redis's minute-long periodic reload. The figure is logged; the bound (20 s) only fails a
// client that waits for the periodic reload.
func TestClusterClientFollowsAFailover(t *testing.T) {
	ctx := context.Background()
	c, err := redisserver.StartCluster(ctx, redisserver.ClusterOptions{Dir: t.TempDir(), Masters: 3, ReplicasPerMaster: 1})
	if err != nil {
		t.Fatalf("this test needs a real redis-server and redis-cli (`make tools` installs them): %v", err)
	}
	defer c.Stop()
	rdb := NewClient(&redis.UniversalOptions{Addrs: c.Addrs(), DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("NewClient of six addresses: %T, want a Cluster client", rdb)
	}
	if err := rdb.Set(ctx, "{k}", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	master, _, err := c.MasterOf(ctx, "{k}")
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := master.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for failures := 0; ; failures++ {
		err := rdb.Get(ctx, "{k}").Err()
		if err == nil {
			t.Logf("the slot answered again %s after its master was killed (%d failed reads)", time.Since(killed).Round(time.Millisecond), failures)
			return
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("the slot still fails %s after its master was killed: %v", time.Since(killed).Round(time.Second), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
