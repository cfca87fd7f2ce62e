package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// TestSentinelFailover kills the Redis master (SIGKILL) under steady traffic and checks that
// the edge never lets a refused key through, that extauthz and keystore follow the promoted
// replica without a restart, that every key acknowledged and replicated before the kill is
// still there, that a delete and a disable keystore acknowledged just before the kill survive
// it (keystore waits for the replica: --redis-min-replica-acks 1), and that revocations made
// through keystore afterwards reach extauthz's cache.
func TestSentinelFailover(t *testing.T) {
	faultload.RunFailover(t, faultload.Failover{
		Promotion:      "the Sentinels promote the replica",
		WaitReplicated: waitReplicated,
		StallReplica:   stallReplica,
		Rejoin:         rejoin,
		MinReplicaAcks: *minReplicaAcks,
	})
}

// stallReplica freezes the replica (SIGSTOP) and cuts its link to the master, so that it
// reconnects only once thawed: a replica left behind by a stalled machine or a partition.
func stallReplica(ctx context.Context) (thaw func() error, err error) {
	thaw, err = platform.FreezeRedisReplica(ctx)
	if err != nil {
		return nil, err
	}
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		_ = thaw()
		return nil, fmt.Errorf("cut the replica off: %w", err)
	}
	return thaw, nil
}

// rejoin starts the killed master again, which the Sentinels make a replica of the new one,
// and waits until it is in sync: keystore's writes wait for a replica, and with the only one
// promoted they fail (503) until one is back — the price of the promise.
func rejoin(t *testing.T, killed string) {
	t.Helper()
	ctx := context.Background()
	if err := platform.RestartRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, 2*time.Minute, "the old master rejoins as a replica", func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
}

// waitReplicated waits until the replica has everything the master acknowledged so far: a
// write and WAIT on the same connection (a pipeline), since WAIT counts the connection's own
// writes. The keys this test makes go straight to the store, not through keystore, so they do
// not wait for the replica themselves; the test kills the master after this.
func waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var wait *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{accesskeys}:faults-barrier", time.Now().String(), time.Minute)
		wait = p.Do(ctx, "WAIT", 1, 10000) // replicas, milliseconds
		return nil
	})
	if n, _ := wait.Int64(); err != nil || n < 1 {
		t.Fatalf("the replica did not acknowledge the writes: %d replicas, %v", n, err)
	}
}
