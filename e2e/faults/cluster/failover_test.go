package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/internal/redisack"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// TestClusterFailover kills (SIGKILL) the master of the {accesskeys} slot, the slot of every
// access key, under steady traffic, and checks what TestSentinelFailover checks: the edge never
// lets a refused key through; extauthz and keystore follow the promoted replica without a
// restart; every key acknowledged and replicated before the kill is still there; a delete and a
// disable keystore acknowledged just before the kill, with the replica stalled, survive it
// (keystore waits on the slot's master for its replica: --redis-min-replica-acks 1); and
// revocations made through keystore afterwards reach extauthz's cache.
func TestClusterFailover(t *testing.T) {
	ctx := context.Background()
	set := faultload.NewKeySet(t)
	last := faultload.LastMomentRevocations(t, set)
	l := faultload.StartLoad(set.Probes, 4)
	defer l.Cancel()

	before := make(map[string]string)
	for i := range 20 {
		name, key := faultload.NewKey(t, fmt.Sprintf("before-%d", i), v1.OwnedAccessKeySpec{User: localdev.AdminUser})
		before[name] = key
	}
	waitReplicated(t)
	l.WaitFor(t, 300)

	// The master is named before its replica is stalled: asked while a node is frozen, the
	// nodes' answer would wait for the thaw, and the kill with it, after the replica caught up.
	killed, err := platform.RedisMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last.Revoke(t, stallReplica, *minReplicaAcks)
	l.Phase.Store(int32(faultload.Faulted))
	killedAt := time.Now()
	if err := platform.KillRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, "the cluster promotes the replica of the {accesskeys} slot", func() error {
		if m, err := platform.RedisMaster(ctx); err != nil || m == killed {
			return fmt.Errorf("master %s, %v", m, err)
		}
		return nil
	})
	promoted := time.Since(killedAt)
	for name, key := range before {
		faultload.Eventually(t, time.Minute, "key "+name+", acknowledged before the kill, works", func() error {
			return faultload.WantStatus(ctx, &faultload.Probe{Name: name, Key: key, Path: faultload.DemoPath + "/version"}, 200)
		})
	}
	serving := time.Since(killedAt)
	last.Check(t)
	l.Phase.Store(int32(faultload.Recovered))

	rejoin(t, killed)
	faultload.RevokeThroughKeystore(t, set)
	newName, newKey := faultload.NewKey(t, "after", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	if err := faultload.WantStatus(ctx, &faultload.Probe{Name: newName, Key: newKey, Path: faultload.DemoPath + "/version"}, 200); err != nil {
		t.Errorf("a key made after the failover: %v", err)
	}
	l.WaitFor(t, 300)
	l.Stop(t)
	last503 := "none"
	if at := l.LastUnavailable(); !at.IsZero() {
		last503 = at.Sub(killedAt).Round(time.Millisecond).String() + " after the kill"
	}
	t.Logf("figures: replica promoted %s after the kill; the edge served every earlier key again %s after; last 503: %s",
		promoted.Round(time.Millisecond), serving.Round(time.Millisecond), last503)
}

// stallReplica freezes the replica of the {accesskeys} slot's master (SIGSTOP) and cuts its
// link to that master, so that it reconnects only once thawed.
func stallReplica(ctx context.Context) (thaw func() error, err error) {
	thaw, err = platform.FreezeRedisReplica(ctx)
	if err != nil {
		return nil, err
	}
	master, err := slotMaster(ctx)
	if err == nil {
		err = master.ClientKillByFilter(ctx, "TYPE", "replica").Err()
	}
	if err != nil {
		_ = thaw()
		return nil, fmt.Errorf("cut the replica off: %w", err)
	}
	return thaw, nil
}

// slotMaster is a client of the {accesskeys} slot's master, by the cluster client's map.
func slotMaster(ctx context.Context) (*redis.Client, error) {
	cc, ok := faultload.RDB.(*redis.ClusterClient)
	if !ok {
		return nil, fmt.Errorf("the platform's Redis client is %T, not a Cluster client", faultload.RDB)
	}
	return cc.MasterForKey(ctx, localdev.AccessKeysSlotKey)
}

// waitReplicated waits until the {accesskeys} slot's replica has everything its master
// acknowledged so far: a write in that slot and WAIT on the same connection to the master
// (redisack, as keystore does). The keys this test makes go straight to the store, not through
// keystore, so they do not wait for the replica themselves.
func waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	acks := redisack.Acks{Replicas: 1, Timeout: 10 * time.Second}
	err := acks.Do(ctx, faultload.RDB, localdev.AccessKeysSlotKey, func(c redis.Cmdable) error {
		return c.Set(ctx, "keygate:{accesskeys}:faults-barrier", time.Now().String(), time.Minute).Err()
	})
	if err != nil {
		t.Fatalf("the replica did not acknowledge the writes: %v", err)
	}
}

// rejoin starts the killed master again, which rejoins the cluster (its nodes.conf) as a replica
// of the promoted one, and waits until the cluster is healthy with every replica in sync:
// keystore's writes wait for a replica of the slot's master, and fail (503) until one is back.
func rejoin(t *testing.T, killed string) {
	t.Helper()
	ctx := context.Background()
	if err := platform.RestartRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	if err := platform.WaitRedisClusterHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, "the old master is a replica of the promoted one", func() error {
		m, err := platform.RedisMaster(ctx)
		if err != nil {
			return err
		}
		if m == killed {
			return fmt.Errorf("the old master %s is the slot's master again", killed)
		}
		return nil
	})
}
