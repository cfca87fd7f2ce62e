package faults

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// TestRedisLosesItsData empties Redis under steady traffic (FLUSHALL, which reaches the replica
// too: Redis restarted without persistence, as its clients see it once go-redis has reconnected),
// then makes more access keys than there were changes before, so that the store's
// resourceVersion first goes back and then passes the one extauthz had followed. extauthz must
// stop serving the key Redis lost, which it had cached, and keys made after the loss must work
// at once, every one. At the end the test puts Redis's data back, as a restore from a backup
// would (restoreLosesTheNewKeys): the resourceVersion goes back a second time.
func TestRedisLosesItsData(t *testing.T) {
	ctx := context.Background()
	backup := faultload.DumpRedis(t)
	restored := false
	t.Cleanup(func() {
		if !restored {
			faultload.RestoreRedis(t, backup)
		}
	})

	_, lostKey := faultload.NewKey(t, "lost", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	lost := &faultload.Revocation{}
	probes := []*faultload.Probe{
		{Name: "lost with Redis's data", Key: lostKey, Path: faultload.DemoPath + "/version", Revoked: lost},
		{Name: "unknown", Key: "unknown-" + rand.Text(), Path: faultload.DemoPath + "/version", Refuse: true},
	}
	l := faultload.StartLoad(probes, 4)
	defer l.Cancel()
	l.WaitFor(t, 200) // the lost key is in extauthz's cache by now
	before, err := keys.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lostVersion, _ := strconv.Atoi(before)

	l.Phase.Store(int32(faultload.Faulted))
	resyncs := faultload.Resyncs(ctx)
	lost.Start()
	lostAt := time.Now()
	faultload.FlushRedis(t)
	// New changes, past the version lost: each new key must pass at once, with no wait for
	// extauthz to notice the loss.
	made, denied := 0, 0
	var after []string
	for made <= lostVersion+2 {
		_, key := faultload.NewKey(t, fmt.Sprintf("after-loss-%d", made), v1.OwnedAccessKeySpec{User: localdev.AdminUser})
		made++
		after = append(after, key)
		if err := faultload.WantStatus(ctx, &faultload.Probe{Name: "made after the loss", Key: key, Path: faultload.DemoPath + "/version"}, 200); err != nil {
			denied++
			if denied <= 5 {
				t.Errorf("a key made after the loss, %s after it: %v", time.Since(lostAt).Round(time.Millisecond), err)
			}
		}
	}
	madeIn := time.Since(lostAt)
	// Noticed at the latest after one 2 s block of the event stream; without that, the cached
	// key would pass until --key-cache-ttl (30 s). 10 s is generous for a loaded machine.
	noticed, err := faultload.WaitResynced(ctx, resyncs, 10*time.Second)
	if err != nil {
		t.Fatalf("not every extauthz replica noticed the loss: %v", err)
	}
	lost.InForce(noticed)
	faultload.Eventually(t, 10*time.Second, "the edge refuses the key Redis lost", func() error {
		if lost.RefusedAt().IsZero() {
			return errors.New("still allowed")
		}
		return nil
	})
	l.Phase.Store(int32(faultload.Recovered))
	l.WaitFor(t, 200) // never allowed again: the load counts a 200 after every replica noticed as a false allow
	l.Stop(t)
	if denied > 0 {
		t.Errorf("%d of %d keys made after the loss were refused", denied, made)
	}
	t.Logf("figures: the key Redis lost was first refused %s after the loss, by every extauthz replica %s after it; %d keys made after it (versions 1 to %d, past the %d lost) each passed at once, in %s",
		lost.RefusedAt().Sub(lostAt).Round(time.Millisecond), noticed.Sub(lostAt).Round(time.Millisecond), made, made, lostVersion, madeIn.Round(time.Millisecond))

	restored = true
	restoreLosesTheNewKeys(t, backup, after)
}

// restoreLosesTheNewKeys restores the backup taken before the loss under traffic with the keys
// made after it, which the restore loses in turn: the resourceVersion goes back a second time,
// below the versions of the new history extauthz followed and cached them from. The edge must
// refuse each of them within the same bound as the first loss and never pass one again; the
// platform's admin key, which the backup holds, must work again.
func restoreLosesTheNewKeys(t *testing.T, backup faultload.RedisData, after []string) {
	t.Helper()
	ctx := context.Background()
	var probes []*faultload.Probe
	for i, key := range after {
		probes = append(probes, &faultload.Probe{Name: fmt.Sprintf("made after the loss (%d), lost by the restore", i), Key: key,
			Path: faultload.DemoPath + "/version", Revoked: &faultload.Revocation{}})
	}
	l := faultload.StartLoad(probes, 4)
	defer l.Cancel()
	l.WaitFor(t, int64(2*len(probes))) // each in extauthz's cache
	l.Phase.Store(int32(faultload.Faulted))
	for _, p := range probes {
		p.Revoked.Start()
	}
	resyncs := faultload.Resyncs(ctx)
	restoredAt := time.Now()
	faultload.RestoreRedis(t, backup)
	noticed, err := faultload.WaitResynced(ctx, resyncs, 10*time.Second)
	if err != nil {
		t.Fatalf("not every extauthz replica noticed the restore's loss: %v", err)
	}
	for _, p := range probes {
		p.Revoked.InForce(noticed)
	}
	for _, p := range probes {
		faultload.Eventually(t, 10*time.Second, "the edge refuses "+p.Name, func() error {
			if p.Revoked.RefusedAt().IsZero() {
				return errors.New("still allowed")
			}
			return nil
		})
	}
	last := restoredAt
	for _, p := range probes {
		if at := p.Revoked.RefusedAt(); at.After(last) {
			last = at
		}
	}
	faultload.Eventually(t, time.Minute, "the admin key works again after the restore", func() error {
		return faultload.WantStatus(ctx, &faultload.Probe{Name: "admin", Key: platform.AdminKey, Path: faultload.DemoPath + "/version"}, 200)
	})
	l.Phase.Store(int32(faultload.Recovered))
	l.WaitFor(t, 200) // never allowed again: a 200 after every replica noticed is a false allow
	l.Stop(t)
	t.Logf("figures: the restore lost the %d keys made after the loss; the edge refused every one %s after it began",
		len(probes), last.Sub(restoredAt).Round(time.Millisecond))
}
