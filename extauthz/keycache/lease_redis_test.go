package keycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// A flood of made-up keys at replicas holding a lease costs Redis nothing: no lookup, no read
// of the store's newest change; only the renewals, a few a second whatever the flood.
func TestFloodOfUnknownKeysOnLeasedReplicas(t *testing.T) {
	a, b := leasedReplica(t), leasedReplica(t)
	admin := newClient()
	defer admin.Close()
	const n, workers = 20000, 32
	renewals := func() float64 {
		return testutil.ToFloat64(a.metrics.renewals[renewOK]) + testutil.ToFloat64(b.metrics.renewals[renewOK]) +
			testutil.ToFloat64(a.metrics.renewals[renewError]) + testutil.ToFloat64(b.metrics.renewals[renewError])
	}
	before, renewedBefore := commandCalls(t, admin), renewals()
	refused := flood(t, n, workers, a, b)
	after, renewed := commandCalls(t, admin), renewals()-renewedBefore
	delta := func(cmd string) int64 { return after[cmd] - before[cmd] }
	reads := testutil.ToFloat64(a.metrics.versionReads) + testutil.ToFloat64(b.metrics.versionReads)
	t.Logf("%d unknown keys at 2 leased replicas: %d refused; %v renewals; Redis ran %d HGET, %d GET, %d XREVRANGE (%v version reads)",
		n, refused, renewed, delta("hget"), delta("get"), delta("xrevrange"), reads)
	if refused != n {
		t.Errorf("%d of %d unknown keys refused", refused, n)
	}
	if delta("hget") != 0 {
		t.Errorf("%d HGETs: unknown keys were looked up in Redis", delta("hget"))
	}
	// A renewal reads the newest change (one GET, one XREVRANGE, in its script); a lookup
	// that found the replica renewing at that moment reads it too. Either way, a handful.
	if got := delta("get"); float64(got) > 2*renewed+10 {
		t.Errorf("%d GETs with %v renewals: unknown keys read the store's newest change", got, renewed)
	}
}

// A replica whose event stream is stuck, holding a lease, still lets a key in that was created
// after it stopped: the create waits for its lease, and its next renewal reads a newest change
// the replica has not applied, so it no longer refuses from memory.
func TestNewKeyWorksOnALeasedReplicaThatIsBehind(t *testing.T) {
	ctx := context.Background()
	_, before := createKey(t, v1.OwnedAccessKeySpec{User: "ida"})
	rdb := newClient()
	cur := mustAtoi(t, must(keys.CurrentVersion(ctx)))
	p := &pausingStore{Store: store.New(rdb), pauseAt: uint64(cur) + 1, paused: make(chan struct{}), release: make(chan struct{})}
	defer close(p.release)
	a := leasedReplicaOf(t, p, rdb)
	createKey(t, v1.OwnedAccessKeySpec{User: "ida"}) // the replica applies it, and stops
	<-p.paused
	until(t, "the stuck replica trusts its set again", a.Trusted)
	var outcome string
	waiting := store.NewWithOptions(newClient(), store.Options{ObserveReplicaWait: func(o string, _ time.Duration) { outcome = o }})
	plain, err := waiting.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "ida"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.LookupDigest(ctx, store.Digest(plain)); err != nil {
		t.Fatalf("a key created while the replica was stuck: %v", err)
	}
	if outcome != store.WaitApplied {
		t.Errorf("the create's wait: %q, want %q (the replica renewed after it)", outcome, store.WaitApplied)
	}
	if _, err := a.LookupDigest(ctx, before); err != nil {
		t.Errorf("a key from before: %v", err)
	}
	if _, err := a.LookupDigest(ctx, randomDigest()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown key at the stuck replica: %v, want not found", err)
	}
}

// What the create's wait is for: a store that does not wait acknowledges a key that a replica
// holding a lease, whose stream is behind, refuses on the lease's word.
func TestWithoutTheWaitALeasedReplicaRefusesANewKey(t *testing.T) {
	ctx := context.Background()
	hasty := store.NewWithOptions(newClient(), store.Options{ReplicaWait: -1})
	// The replica renews every quarter of its lease: a renewal between the create and the
	// lookup would end its trust and let the key in. Three stuck replicas in turn.
	for attempt := range 3 {
		createKey(t, v1.OwnedAccessKeySpec{User: "jo"})
		rdb := newClient()
		cur := mustAtoi(t, must(keys.CurrentVersion(ctx)))
		p := &pausingStore{Store: store.New(rdb), pauseAt: uint64(cur) + 1, paused: make(chan struct{}), release: make(chan struct{})}
		a := leasedReplicaOf(t, p, rdb)
		createKey(t, v1.OwnedAccessKeySpec{User: "jo"})
		<-p.paused
		until(t, "the stuck replica trusts its set again", a.Trusted)
		plain, err := hasty.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "jo"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.LookupDigest(ctx, store.Digest(plain))
		close(p.release)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		t.Logf("attempt %d: the key was let in (%v): a renewal came between", attempt, err)
	}
	t.Error("a replica holding a lease let in a key created, without waiting for it, while its stream was stuck: the lease is not trusted")
}

// failingLeaser is a store whose renewals fail once fail is set, as when this replica cannot
// reach Redis and the others can.
type failingLeaser struct {
	*store.Store
	fail atomic.Bool
}

func (f *failingLeaser) Renew(ctx context.Context, id string, applied uint64, lease time.Duration) (store.Head, error) {
	if f.fail.Load() {
		return store.Head{}, errors.New("renewals fail")
	}
	return f.Store.Renew(ctx, id, applied, lease)
}

// A replica whose renewals fail stops trusting its set within its lease, and proves unknown
// keys absent by reads again; a create waits for its lease to run out, then goes on.
func TestLeaseLapsesWhenRenewalsFail(t *testing.T) {
	ctx := context.Background()
	rdb := newClient()
	f := &failingLeaser{Store: store.New(rdb)}
	a := leasedReplicaOf(t, f, rdb)
	f.fail.Store(true)
	var outcome string
	waiting := store.NewWithOptions(newClient(), store.Options{ObserveReplicaWait: func(o string, _ time.Duration) { outcome = o }})
	plain, err := waiting.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "kim"}})
	if err != nil {
		t.Fatal(err)
	}
	if outcome != store.WaitLapsed && outcome != store.WaitApplied {
		t.Errorf("the create's wait: %q, want lapsed (or applied, had the replica reported it before its renewals failed)", outcome)
	}
	until(t, "the replica stops trusting its set", func() bool { return !a.Trusted() })
	reads := testutil.ToFloat64(a.metrics.versionReads)
	if _, err := a.LookupDigest(ctx, randomDigest()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown key: %v, want not found", err)
	}
	if got := testutil.ToFloat64(a.metrics.versionReads); got != reads+1 {
		t.Errorf("version reads went from %v to %v: want one read for the unknown key", reads, got)
	}
	if _, err := a.LookupDigest(ctx, store.Digest(plain)); err != nil {
		t.Errorf("the key created meanwhile: %v", err)
	}
}

// A replica that stops releases its lease: creates no longer wait for it.
func TestStoppedReplicaReleasesItsLease(t *testing.T) {
	rdb := newClient()
	defer rdb.Close()
	c := New(store.New(rdb), Options{Lease: store.MaxLease}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	until(t, "the replica trusts its set", c.Trusted)
	if !leaseHeld(t, c) {
		t.Fatal("the replica holds no lease in the store")
	}
	cancel()
	until(t, "the lease is released", func() bool { return !leaseHeld(t, c) })
	if c.Trusted() {
		t.Error("a stopped replica still trusts its set")
	}
	var outcome string
	s := store.NewWithOptions(rdb, store.Options{ObserveReplicaWait: func(o string, _ time.Duration) { outcome = o }})
	if _, err := s.Create(context.Background(), &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "lou"}}); err != nil {
		t.Fatal(err)
	}
	if outcome != store.WaitNone {
		t.Errorf("the create's wait: %q, want %q: a minute's lease of a stopped replica held it", outcome, store.WaitNone)
	}
	rdb.Close() // ends the follower's blocked read
	<-done
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkCreate is what a create costs with no replica holding a lease, and with two that do
// (each create then waits for both to apply it).
func BenchmarkCreate(b *testing.B) {
	ctx := context.Background()
	for _, leased := range []int{0, 2} {
		b.Run(fmt.Sprintf("leased=%d", leased), func(b *testing.B) {
			for range leased {
				leasedReplica(b)
			}
			for i := 0; b.Loop(); i++ {
				k := &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "bench"}}
				k.Name = fmt.Sprintf("%s-%d", k.Name, i)
				if _, err := keys.Create(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
