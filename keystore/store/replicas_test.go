package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// A renewal reads the store's newest change as Head does, and records the replica's applied
// version, the newest version and when the lease ends.
func TestRenewReadsTheNewestChange(t *testing.T) {
	ctx := context.Background()
	must(store.Create(ctx, key(unique("renew"), v1.OwnedAccessKeySpec{User: "rita"})))
	id := unique("replica")
	t.Cleanup(func() { _ = store.Release(ctx, id) })
	got, err := store.Renew(ctx, id, 7, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := must(store.Head(ctx))
	if got != want || got.Entry == "" {
		t.Errorf("Renew read %+v, Head %+v: want the same newest change, with its entry", got, want)
	}
	l := leaseOf(t, id)
	if l.applied != 7 || l.newest != want.Version {
		t.Errorf("lease %d %d: want applied 7, newest %d", l.applied, l.newest, want.Version)
	}
	if left := time.Until(l.end); left < 0 || left > 2*time.Second {
		t.Errorf("lease ends %s from now: want about 1s", left)
	}
	if err := store.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	if v := must(rdb.HGet(ctx, replicasKey, id).Result()); !strings.HasSuffix(v, " released") {
		t.Errorf("the released lease is %q: want it kept, marked released", v)
	}
	if _, err := store.Renew(ctx, "", 0, time.Second); err == nil {
		t.Error("Renew without an id: want an error")
	}
	if _, err := store.Renew(ctx, id, 0, MaxLease+time.Millisecond); err == nil {
		t.Errorf("Renew for longer than %s: want an error", MaxLease)
	}
}

// leaseOf reads replica id's lease from the hash, with its end by this process's clock.
func leaseOf(t *testing.T, id string) lease {
	t.Helper()
	v := must(rdb.HGet(context.Background(), replicasKey, id).Result())
	l, ok := parseLease(v, time.Now().UnixMilli(), time.Now())
	if !ok {
		t.Fatalf("lease %q: not a lease", v)
	}
	return l
}

// A create returns once every replica holding a lease applied it or renewed after it, or its
// lease ran out, and says which; bounded by ReplicaWait.
func TestCreateWaitsForTheLeases(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		wait time.Duration
		// replica holds a lease for the create, until stop is closed (nil: none)
		replica func(id string, stop <-chan struct{})
		keeps   bool // replica renews until stop: the create is made after its first renewal
		want    string
		gone    bool // the lease is no longer in the hash
		lose    bool // the store read the lease, then Redis lost it
		restore bool // the store read the lease and a later renewal, then Redis went back to the first
	}{
		"no replica holds a lease": {want: WaitNone},
		"a replica applies the create": {want: WaitApplied, keeps: true, replica: func(id string, stop <-chan struct{}) {
			// As extauthz: it renews with the version it applied, here the store's current one.
			renewUntil(t, id, stop, func() uint64 { return must(strconv.ParseUint(must(store.CurrentVersion(ctx)), 10, 64)) })
		}},
		"a replica renews after the create without applying it": {want: WaitApplied, keeps: true, replica: func(id string, stop <-chan struct{}) {
			renewUntil(t, id, stop, func() uint64 { return 0 })
		}},
		"a replica stopped renewing: its lease runs out": {want: WaitLapsed, replica: func(id string, _ <-chan struct{}) {
			must(store.Renew(ctx, id, 0, 300*time.Millisecond))
		}},
		"a lease longer than the wait": {wait: 200 * time.Millisecond, want: WaitTimeout, replica: func(id string, _ <-chan struct{}) {
			must(store.Renew(ctx, id, 0, MaxLease))
		}},
		"a replica released its lease": {want: WaitNone, replica: func(id string, _ <-chan struct{}) {
			must(store.Renew(ctx, id, 0, MaxLease))
			if err := store.Release(ctx, id); err != nil {
				t.Error(err)
			}
		}},
		"Redis lost the lease": {want: WaitLost, gone: true, replica: func(id string, _ <-chan struct{}) {
			must(store.Renew(ctx, id, 0, 300*time.Millisecond))
		}, lose: true},
		"Redis went back to an older lease": {want: WaitLost, replica: func(id string, _ <-chan struct{}) {
			must(store.Renew(ctx, id, 0, 300*time.Millisecond))
		}, restore: true},
		"a field that is no lease": {want: WaitNone, gone: true, replica: func(id string, _ <-chan struct{}) {
			must(rdb.HSet(ctx, replicasKey, id, "not a lease").Result())
		}},
		// Whoever can write Redis could otherwise make every create wait ReplicaWait.
		"a planted lease longer than any replica's": {want: WaitNone, gone: true, replica: func(id string, _ <-chan struct{}) {
			plant(t, id, time.Hour, time.Hour)
		}},
		"a planted lease ending further away than its length": {want: WaitNone, gone: true, replica: func(id string, _ <-chan struct{}) {
			plant(t, id, time.Hour, time.Second)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			id := unique("replica")
			t.Cleanup(func() { _ = store.Release(ctx, id) })
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if tc.replica != nil {
				started := make(chan struct{})
				wg.Go(func() {
					tc.replica(id, stop)
					close(started)
				})
				if tc.keeps {
					waitFor(t, func() bool { return must(rdb.HExists(ctx, replicasKey, id).Result()) })
				} else {
					<-started
				}
			}
			var outcome string
			s := NewWithOptions(rdb, Options{ReplicaWait: tc.wait, ObserveReplicaWait: func(o string, _ time.Duration) { outcome = o }})
			if tc.restore {
				old := must(rdb.HGet(ctx, replicasKey, id).Result())
				time.Sleep(100 * time.Millisecond) // the renewal after it ends later by as much
				must(store.Renew(ctx, id, 0, 300*time.Millisecond))
				if _, _, err := s.readLeases(ctx); err != nil {
					t.Fatal(err)
				}
				must(rdb.HSet(ctx, replicasKey, id, old).Result())
			}
			if tc.lose {
				if _, _, err := s.readLeases(ctx); err != nil {
					t.Fatal(err)
				}
				must(rdb.HDel(ctx, replicasKey, id).Result())
			}
			must(s.Create(ctx, key(unique("wait"), v1.OwnedAccessKeySpec{User: "rita"})))
			close(stop)
			wg.Wait()
			if outcome != tc.want {
				t.Errorf("the create's wait: %q, want %q", outcome, tc.want)
			}
			if tc.replica != nil {
				if there := must(rdb.HExists(ctx, replicasKey, id).Result()); there == tc.gone {
					t.Errorf("the lease is in the hash: %v, want %v", there, !tc.gone)
				}
			}
		})
	}
}

// plant writes a lease that ends in ends, of length, as no replica's renewal would.
func plant(t *testing.T, id string, ends, length time.Duration) {
	t.Helper()
	v := fmt.Sprintf("0 0 %d %d", time.Now().Add(ends).UnixMilli(), length.Milliseconds())
	must(rdb.HSet(context.Background(), replicasKey, id, v).Result())
}

// renewUntil renews id's lease every millisecond with applied() until stop is closed.
func renewUntil(t *testing.T, id string, stop <-chan struct{}, applied func() uint64) {
	for {
		if _, err := store.Renew(context.Background(), id, applied(), MaxLease); err != nil {
			t.Error(err)
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	for start := time.Now(); !f(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("not within 10s")
		}
	}
}

// The book tells leases Redis lost from leases that ended, by what it saw before.
func TestLeaseBook(t *testing.T) {
	t0 := time.Now()
	held := func(end time.Duration) lease {
		return lease{holds: true, end: t0.Add(end), length: time.Second}
	}
	for name, tc := range map[string]struct {
		before, after lease
		gone          bool // not in the second read
		at            time.Duration
		lost          bool
	}{
		"renewed":                                 {before: held(time.Second), after: held(1250 * time.Millisecond), at: 250 * time.Millisecond},
		"read again unchanged":                    {before: held(time.Second), after: held(time.Second), at: 10 * time.Millisecond},
		"gone before its end":                     {before: held(time.Second), gone: true, at: 10 * time.Millisecond, lost: true},
		"gone within the retention":               {before: held(time.Second), gone: true, at: 3 * time.Second, lost: true},
		"gone after the retention":                {before: held(time.Second), gone: true, at: 12 * time.Second},
		"released, gone":                          {before: lease{released: true, end: t0.Add(time.Second), length: time.Second}, gone: true, at: 10 * time.Millisecond},
		"back at an earlier end":                  {before: held(time.Second), after: held(750 * time.Millisecond), at: 10 * time.Millisecond, lost: true},
		"an earlier end within the view's margin": {before: held(time.Second), after: held(990 * time.Millisecond), at: 10 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			var b leaseBook
			if until := b.note(map[string]lease{"r": tc.before}, t0); !until.IsZero() {
				t.Fatalf("the first read: wait until %v", until)
			}
			second := map[string]lease{}
			if !tc.gone {
				second["r"] = tc.after
			}
			at := t0.Add(tc.at)
			until := b.note(second, at)
			if lost := until.After(at); lost != tc.lost {
				t.Errorf("lost: %v, want %v", lost, tc.lost)
			}
			if tc.lost && !until.Equal(at.Add(time.Second)) {
				t.Errorf("creates wait until %v after the read, want one lease (1s)", until.Sub(at))
			}
		})
	}
}
