package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// TestSentinelFailover kills the Redis master (SIGKILL) under steady traffic and checks that
// the edge never lets a refused key through, that extauthz and keystore follow the promoted
// replica without a restart, that every key acknowledged and replicated before the kill is
// still there, that a delete and a disable keystore acknowledged just before the kill survive
// it (keystore waits for the replica: --redis-min-replica-acks 1), and that revocations made
// through keystore afterwards reach extauthz's cache.
func TestSentinelFailover(t *testing.T) {
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

	last.Revoke(t, stallReplica, *minReplicaAcks)
	l.Phase.Store(int32(faultload.Faulted))
	killedAt := time.Now()
	killed, err := platform.KillRedisMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, "the Sentinels promote the replica", func() error {
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
	logFailoverFigures(t, l, killedAt, promoted, serving)
}

func logFailoverFigures(t *testing.T, l *faultload.Load, killedAt time.Time, promoted, serving time.Duration) {
	t.Helper()
	last503 := "none"
	if at := l.LastUnavailable(); !at.IsZero() {
		last503 = at.Sub(killedAt).Round(time.Millisecond).String() + " after the kill"
	}
	t.Logf("figures: replica promoted %s after the kill; the edge served every earlier key again %s after; last 503: %s",
		promoted.Round(time.Millisecond), serving.Round(time.Millisecond), last503)
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
