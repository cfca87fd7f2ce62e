//go:build soak

package soak

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// dataLoss is the data-loss fault (e2e/faults' TestRedisLosesItsData on the soak's schedule):
// Redis loses every key under the load; the edge must refuse each of the load's allowed keys
// within noticeBound, and never pass one again until the data is restored; then a restore of
// the dump taken just before brings them back, and they must pass again.
//
// The load's allowed probes are its revocations: each gets a faultload.Revocation (arm),
// started at the loss and restored with the data. Each extauthz replica notices the
// loss on its own, so the proof that the edge must refuse a lost key is not its first refusal
// (one replica's) but every replica having dropped its cache (faultload.NoticeLoss). So a 200 for a
// lost key sent after every replica noticed, and answered before the restore began, is a
// false allow (the soak fails);
// refusals between the loss and the edge passing the key again are right, counted in the
// fault's notes; a refusal of a request sent after the edge passed the key again is a false
// deny of the fault's window.
type dataLoss struct {
	allowed []*faultload.Probe
	churn   *churn
	notes   string
}

// lost is the soak's one dataLoss; TestSoak arms it before the load starts.
var lost = &dataLoss{}

const (
	// noticeBound bounds the wait for every lost key's refusal: a replica notices the loss on
	// its next version read (a lookup of a key outside its digest set: the load's unknown key)
	// or at the latest after one 2 s block of the event stream; without that, the cached keys
	// would pass until --key-cache-ttl (30 s). 10 s is generous for a loaded machine.
	noticeBound = 10 * time.Second
	// lossHeld is how long Redis stays empty after the last lost key was first refused: longer
	// than a block of the event stream, so that a replica still serving a lost key from its
	// cache after another one refused it is caught (a false allow) before the restore hides it.
	lossHeld = 5 * time.Second
)

// arm gives each of probes that must pass a Revocation, not started (the probe must pass, as
// without one), and keeps them and churn for the fault. Call it before the load starts.
func (d *dataLoss) arm(probes []*faultload.Probe, c *churn) {
	for _, p := range probes {
		if !p.Refuse && p.Revoked == nil {
			p.Revoked = &faultload.Revocation{}
			d.allowed = append(d.allowed, p)
		}
	}
	d.churn = c
}

// inject dumps Redis, empties it, waits until the edge refuses every lost key, holds the loss
// for lossHeld, restores the dump and waits until the admin key and every lost key pass again.
//
// Churn is paused from before the dump until after the restore: a key churn deleted (or
// disabled, or logged out) after the dump would be brought back by the restore, and passing
// it then is what restoring an older backup means, not a fault of the edge; counting it a
// false allow would blame the edge for the operator's restore. So nothing changes the keys
// between the dump and the restore but the loss itself.
func (d *dataLoss) inject(t *testing.T) {
	d.churn.pause()
	defer d.churn.resume()
	backup := faultload.DumpRedis(t)
	for _, p := range d.allowed {
		p.Revoked.Start()
	}
	lostAt := time.Now()
	faultload.FlushRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), noticeBound)
	defer cancel()
	revs := make([]*faultload.Revocation, len(d.allowed))
	for i, p := range d.allowed {
		revs[i] = p.Revoked
	}
	noticed := faultload.NoticeLoss(ctx, revs)
	faultload.Eventually(t, noticeBound, "the edge refuses every lost key", func() error {
		return d.waiting(func(r *faultload.Revocation) time.Time { return r.RefusedAt() }, "still passes")
	})
	first, last := d.span(func(r *faultload.Revocation) time.Time { return r.RefusedAt() })
	all, ok := <-noticed
	if !ok {
		t.Fatalf("not every extauthz replica noticed the loss within %s (keygate_extauthz_keycache_digests still above 0)", noticeBound)
	}
	time.Sleep(lossHeld)

	for _, p := range d.allowed {
		p.Revoked.Restore()
	}
	restoredAt := time.Now()
	faultload.RestoreRedis(t, backup)
	edgeServes(t)
	faultload.Eventually(t, time.Minute, "the edge passes every restored key", func() error {
		return d.waiting(func(r *faultload.Revocation) time.Time { return r.BackAt() }, "not passed since the restore")
	})
	_, back := d.span(func(r *faultload.Revocation) time.Time { return r.BackAt() })
	refusals := 0
	for _, p := range d.allowed {
		refusals += p.Revoked.Refusals()
	}
	d.notes = fmt.Sprintf("%d Redis keys lost; the load's %d allowed keys first refused %s to %s after the loss, every replica had noticed by %s; %d refusals of them until each passed again, all by %s after the restore began",
		len(backup), len(d.allowed), first.Sub(lostAt).Round(time.Millisecond), last.Sub(lostAt).Round(time.Millisecond),
		all.Sub(lostAt).Round(time.Millisecond), refusals, back.Sub(restoredAt).Round(time.Millisecond))
	t.Logf("figures: data-loss: %s", d.notes)
	note("%s", d.notes)
}

// waiting is an error naming the first allowed probe whose time at is still zero.
func (d *dataLoss) waiting(at func(*faultload.Revocation) time.Time, what string) error {
	for _, p := range d.allowed {
		if at(p.Revoked).IsZero() {
			return fmt.Errorf("%s: %s", p.Name, what)
		}
	}
	return nil
}

// span is the earliest and the latest time at of the allowed probes.
func (d *dataLoss) span(at func(*faultload.Revocation) time.Time) (first, last time.Time) {
	for _, p := range d.allowed {
		v := at(p.Revoked)
		if first.IsZero() || v.Before(first) {
			first = v
		}
		if v.After(last) {
			last = v
		}
	}
	return first, last
}
