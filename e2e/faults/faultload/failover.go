package faultload

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// Failover is how one Redis deployment (Sentinel, Cluster) fails over, for RunFailover.
type Failover struct {
	// Promotion says what promotes the replica, for the wait's message.
	Promotion string
	// WaitReplicated returns once the replica has every write the master acknowledged so far.
	WaitReplicated func(t *testing.T)
	// StallReplica cuts the replica off until thaw (for LastMoment.Revoke).
	StallReplica func(ctx context.Context) (thaw func() error, err error)
	// Rejoin starts the killed master again and waits until it is a replica in sync.
	Rejoin func(t *testing.T, killed string)
	// MinReplicaAcks is keystore's --redis-min-replica-acks.
	MinReplicaAcks int
}

// RunFailover kills (SIGKILL) the master of the access keys under steady traffic and checks
// that the edge never lets a refused key through; that extauthz and keystore follow the
// promoted replica without a restart; that every key acknowledged and replicated before the
// kill is still there; that a delete and a disable keystore acknowledged just before the kill,
// with the replica stalled, survive it (with MinReplicaAcks 1: LastMoment); and that
// revocations made through keystore afterwards reach every extauthz replica. It logs the
// figures docs/reliability.md quotes.
func RunFailover(t *testing.T, f Failover) {
	t.Helper()
	ctx := context.Background()
	set := NewKeySet(t)
	last := LastMomentRevocations(t, set)
	l := StartLoad(set.Probes, 4)
	defer l.Cancel()

	before := make(map[string]string)
	for i := range 20 {
		name, key := NewKey(t, fmt.Sprintf("before-%d", i), v1.OwnedAccessKeySpec{User: localdev.AdminUser})
		before[name] = key
	}
	f.WaitReplicated(t)
	l.WaitFor(t, 300)

	// The master is named before its replica is stalled: asked while a node is frozen, a
	// Cluster's nodes would answer after the thaw, and the kill with them, once the replica
	// caught up.
	killed, err := Platform.RedisMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last.Revoke(t, f.StallReplica, f.MinReplicaAcks)
	l.Phase.Store(int32(Faulted))
	killedAt := time.Now()
	if err := Platform.KillRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	Eventually(t, time.Minute, f.Promotion, func() error {
		if m, err := Platform.RedisMaster(ctx); err != nil || m == killed {
			return fmt.Errorf("master %s, %v", m, err)
		}
		return nil
	})
	promoted := time.Since(killedAt)
	for name, key := range before {
		Eventually(t, time.Minute, "key "+name+", acknowledged before the kill, works", func() error {
			return WantStatus(ctx, &Probe{Name: name, Key: key, Path: DemoPath + "/version"}, 200)
		})
	}
	serving := time.Since(killedAt)
	last.Check(t)
	l.Phase.Store(int32(Recovered))

	f.Rejoin(t, killed)
	RevokeThroughKeystore(t, set)
	newName, newKey := NewKey(t, "after", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	if err := WantStatus(ctx, &Probe{Name: newName, Key: newKey, Path: DemoPath + "/version"}, 200); err != nil {
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
