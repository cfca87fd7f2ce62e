package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/internal/redisack"
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
	faultload.RunFailover(t, faultload.Failover{
		Promotion:      "the cluster promotes the replica of the {accesskeys} slot",
		WaitReplicated: waitReplicated,
		StallReplica:   stallReplica,
		Rejoin:         rejoin,
		MinReplicaAcks: *minReplicaAcks,
	})
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
