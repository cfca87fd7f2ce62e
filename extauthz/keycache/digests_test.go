package keycache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keygate-dev/keygate/internal/metricstest"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

func TestDigestSet(t *testing.T) {
	d := func(prefix, rest string) string { return prefix + rest + "00000000000000000000000000000000" }
	a := d("00000000000000aa", "0000000000000001")
	b := d("00000000000000aa", "0000000000000002") // same first 8 bytes as a
	c := d("00000000000000cc", "0000000000000001")
	s := digestSet{}
	has := func(digest string) bool { return s.has(digestKey(digest)) }
	s.add(digestKey(a))
	s.add(digestKey(a)) // idempotent: the list and an event may both add it
	if !has(a) || has(b) || has(c) {
		t.Fatalf("after adding a: a %v, b %v, c %v; want true, false, false", has(a), has(b), has(c))
	}
	s.remove(digestKey(c)) // not there: nothing happens
	s.remove(digestKey(a))
	s.remove(digestKey(a))
	if has(a) || len(s) != 0 {
		t.Fatalf("after removing a: has %v, %d slots", has(a), len(s))
	}
	// a and b share a slot: removing one keeps the other, and the slot, until listed again.
	s.add(digestKey(a))
	s.add(digestKey(b))
	s.remove(digestKey(a))
	if !has(b) {
		t.Fatal("removing a dropped b, which shares its first 8 bytes")
	}
	if !has(a) {
		t.Error("a shared slot answers 'maybe present' for both digests")
	}
	// Digests that are not hex (this package's fake stream) are hashed.
	s = digestSet{}
	s.add(digestKey("d1"))
	if !s.has(digestKey("d1")) || s.has(digestKey("d2")) {
		t.Error("non-hex digests")
	}
	real := store.Digest("kgk_example")
	k, v := digestKey(real)
	if fmt.Sprintf("%016x", k) != real[:16] || v&1 != 1 {
		t.Errorf("digestKey(%s) = %016x, %016x; want its first 16 hex digits and the next 16 with the low bit set", real, k, v)
	}
}

// An unknown key is refused from the digest set: one version read, no lookup in the store.
func TestUnknownKeyRefusedWithoutLookup(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, reg := start(t, src, Options{})
	if _, err := lookup(t, c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	if n := src.lookupCount(); n != 0 {
		t.Errorf("store read %d times for an unknown key, want 0", n)
	}
	mustFind(t, c, "d1", "k1")
	if got := testutil.ToFloat64(c.metrics.absent); got != 1 {
		t.Errorf("lookups{absent} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.versionReads); got != 1 {
		t.Errorf("version reads = %v, want 1", got)
	}
	if c.Digests() != 1 {
		t.Errorf("Digests = %d, want 1", c.Digests())
	}
	metricstest.Lint(t, reg)
}

// A key created while the replica follows the stream works on the next lookup: its event put
// its digest in the set.
func TestCreatedKeyWorksAtOnce(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{})
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	src.put("d1", "k1")
	src.emit(store.Event{Type: watch.Added, Digest: "d1", Version: src.version})
	mustFind(t, c, "d1", "k1")
	src.remove("d1")
	src.emit(store.Event{Type: watch.Deleted, Digest: "d1", Version: src.version})
	before := src.lookupCount()
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if src.lookupCount() != before {
		t.Error("a deleted key's digest stayed in the set")
	}
}

// The store is ahead of the follower (a key acknowledged whose event is on its way): the
// lookup waits for the event, and finds the key.
func TestLookupWaitsForTheFollower(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{CatchUp: 10 * time.Second})
	src.put("d1", "k1")
	go func() {
		time.Sleep(20 * time.Millisecond)
		src.emit(store.Event{Type: watch.Added, Digest: "d1", Version: src.version})
	}()
	mustFind(t, c, "d1", "k1")
	for _, r := range fallbackReasons {
		if got := testutil.ToFloat64(c.metrics.fallbacks[r]); got != 0 {
			t.Errorf("fallbacks{%s} = %v, want 0", r, got)
		}
	}
}

// The follower does not catch up in time (its event lost, or slow): the lookup reads the
// store, and finds the key.
func TestLaggingFollowerFallsBackToTheStore(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{CatchUp: 5 * time.Millisecond})
	src.put("d1", "k1") // no event
	mustFind(t, c, "d1", "k1")
	if got := testutil.ToFloat64(c.metrics.fallbacks[fallbackLagging]); got != 1 {
		t.Errorf("fallbacks{lagging} = %v, want 1", got)
	}
}

// A failed version read sends the lookup to the store.
func TestVersionReadErrorFallsBackToTheStore(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{})
	src.mu.Lock()
	src.versionRead = func(context.Context) error { return errors.New("connection refused") }
	src.mu.Unlock()
	if _, err := lookup(t, c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if src.lookupCount() != 1 || testutil.ToFloat64(c.metrics.fallbacks[fallbackError]) != 1 {
		t.Errorf("store reads %d, fallbacks{error} %v; want 1, 1", src.lookupCount(), testutil.ToFloat64(c.metrics.fallbacks[fallbackError]))
	}
}

// blockedReads makes src's version reads wait for release after they took the version;
// began receives once per read.
func blockedReads(src *fakeSource) (began, release chan struct{}) {
	began, release = make(chan struct{}, 100), make(chan struct{})
	src.mu.Lock()
	defer src.mu.Unlock()
	src.versionRead = func(ctx context.Context) error {
		began <- struct{}{}
		<-release
		return nil
	}
	return began, release
}

// At most one version read is in flight; the lookups that arrive meanwhile share the next one,
// and never the one in flight, which began before them.
func TestVersionReadsAreBatched(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{})
	began, release := blockedReads(src)
	r1 := c.versionAfterNow()
	<-began // r1 is in flight
	r2, r3 := c.versionAfterNow(), c.versionAfterNow()
	if r2 == r1 {
		t.Fatal("a lookup that arrived while a read was in flight joined it")
	}
	if r3 != r2 {
		t.Error("two lookups that arrived while a read was in flight got different next reads")
	}
	select {
	case <-began:
		t.Fatal("a second read began while one was in flight")
	default:
	}
	release <- struct{}{}
	<-r1.done
	<-began
	release <- struct{}{}
	<-r2.done
	if got := testutil.ToFloat64(c.metrics.versionReads); got != 2 {
		t.Errorf("version reads = %v for 3 waiters in 2 batches, want 2", got)
	}
	r4 := c.versionAfterNow() // nothing in flight: starts at once
	<-began
	release <- struct{}{}
	<-r4.done
}

// The property the batching exists for: a key created while a version read is in flight, its
// event not yet applied, works for a lookup that arrives after the creation. Reusing the read
// in flight (older than the key) would refuse it.
func TestLookupNeverUsesAReadThatBeganBeforeIt(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{CatchUp: 10 * time.Second})
	began, release := blockedReads(src)
	first := make(chan error, 1)
	go func() { _, err := c.LookupDigest(context.Background(), "other"); first <- err }()
	<-began // a read from before the creation is in flight
	src.put("d1", "k1")
	found := make(chan error, 1)
	go func() { _, err := c.LookupDigest(context.Background(), "d1"); found <- err }()
	var more sync.WaitGroup
	for range 20 {
		more.Go(func() {
			if _, err := c.LookupDigest(context.Background(), "unknown"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("unknown key: %v", err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let them join the next read (the outcome does not depend on it)
	release <- struct{}{}
	if err := <-first; !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the first lookup: %v, want ErrNotFound", err)
	}
	// The next read takes the key's version; the follower applies its event meanwhile. A
	// lookup that reused the first read has already been answered, wrongly.
	emitted := false
	for {
		select {
		case <-began:
			if !emitted {
				src.emit(store.Event{Type: watch.Added, Digest: "d1", Version: 1})
				emitted = true
			}
			release <- struct{}{}
			continue
		case err := <-found:
			if err != nil {
				t.Fatalf("a key created before the lookup arrived: %v", err)
			}
		}
		break
	}
	go func() {
		for range began {
			release <- struct{}{}
		}
	}()
	more.Wait()
	reads := testutil.ToFloat64(c.metrics.versionReads)
	t.Logf("%v version reads for 22 lookups", reads)
	if reads > 4 {
		t.Errorf("%v version reads for 22 lookups that arrived during 2 reads, want at most a few", reads)
	}
	close(began)
}

// A version read below what the follower applied means Redis lost data: the cache empties
// itself and follows again, and what it held is not served.
func TestStoreGoingBackInTimeEmptiesTheCache(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{})
	mustFind(t, c, "d1", "k1")
	src.mu.Lock()
	src.version = 10
	src.mu.Unlock()
	src.emit(store.Event{Type: watch.Modified, Digest: "d2", Version: 10})
	// Redis restarts empty, then takes one write.
	src.mu.Lock()
	src.keys = map[string]*v1.OwnedAccessKey{}
	src.version = 1
	src.mu.Unlock()
	if _, err := lookup(t, c, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	<-src.watches // followed again
	if got := testutil.ToFloat64(c.metrics.restarts.WithLabelValues("resync")); got != 1 {
		t.Errorf("restarts{resync} = %v, want 1", got)
	}
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a key Redis lost: %v, want ErrNotFound", err)
	}
	waitFor(t, c.Live)
}

// loseData empties src's keys as Redis losing its data does: its versions start again from 0,
// on another history.
func loseData(src *fakeSource) {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.keys = map[string]*v1.OwnedAccessKey{}
	src.version, src.history = 0, "after the loss"
}

// Redis loses its data and takes as many new changes as the replica had applied before the
// follower notices: the store is at the very version the replica applied, on another history.
// A key of the new history is read from the store, not refused from the set of the old one;
// the cache empties itself and follows again. (Comparing versions alone refused it.)
func TestSameVersionOtherHistoryIsNoProof(t *testing.T) {
	for _, tt := range []struct {
		name string
		// events: the replica applied the old changes as events rather than listing them.
		events bool
	}{{"followed from the old version", false}, {"the old changes applied as events", true}} {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			if !tt.events {
				src.put("d1", "k1")
				src.put("d2", "k2")
			}
			c, _ := start(t, src, Options{})
			if tt.events {
				for _, d := range []string{"d1", "d2"} {
					src.put(d, "k"+d[1:])
					src.emit(store.Event{Type: watch.Added, Digest: d, Version: src.version})
				}
			}
			loseData(src)
			src.put("d3", "k3")
			src.put("d4", "k4") // version 2 again; neither event reached the follower
			mustFind(t, c, "d4", "k4")
			if got := testutil.ToFloat64(c.metrics.fallbacks[fallbackResync]); got != 1 {
				t.Errorf("fallbacks{resync} = %v, want 1", got)
			}
			<-src.watches // followed again
			if got := testutil.ToFloat64(c.metrics.restarts.WithLabelValues("resync")); got != 1 {
				t.Errorf("restarts{resync} = %v, want 1", got)
			}
			waitFor(t, c.listed)
			mustFind(t, c, "d3", "k3")
			if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a key Redis lost: %v, want ErrNotFound", err)
			}
		})
	}
}

// The store is ahead of the follower when the read returns, and the follower then applies, under
// that version, an entry of the old history (read from Redis just before the loss): not proof
// either.
func TestFollowerCatchingUpOnTheLostHistoryIsNoProof(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{CatchUp: 10 * time.Second})
	loseData(src)
	src.put("d2", "k2")
	src.put("d3", "k3") // the store is at 2, the follower at 1
	began, release := blockedReads(src)
	found := make(chan error, 1)
	go func() { _, err := c.LookupDigest(context.Background(), "d3"); found <- err }()
	<-began
	release <- struct{}{}
	go func() {
		for range began {
			release <- struct{}{}
		}
	}()
	defer close(began)
	time.Sleep(20 * time.Millisecond) // let the lookup wait for the follower (the outcome does not depend on it)
	src.emit(store.Event{Type: watch.Added, Digest: "old", Version: 2, Entry: "/2"})
	if err := <-found; err != nil {
		t.Fatalf("a key of the new history: %v", err)
	}
	if got := testutil.ToFloat64(c.metrics.fallbacks[fallbackResync]); got != 1 {
		t.Errorf("fallbacks{resync} = %v, want 1", got)
	}
}

// The digest set is listed while the events are followed: entries are served meanwhile, unknown
// keys read the store until the set is listed, and the changes made during the listing reach
// the set.
func TestSetListedWhileFollowing(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	src.put("d3", "k3")
	listing, release := make(chan struct{}), make(chan struct{})
	src.listing = func() { close(listing); <-release }
	c := New(src, Options{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-src.watches
	waitFor(t, c.Live)
	<-listing // the listing has taken the keys
	if _, err := lookup(t, c, "unknown"); !errors.Is(err, store.ErrNotFound) || src.lookupCount() != 1 {
		t.Fatalf("an unknown key before the set is listed: %v after %d store reads; want ErrNotFound from the store", err, src.lookupCount())
	}
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	if src.lookupCount() != 2 {
		t.Error("entries not served while the set is listed")
	}
	src.put("d2", "k2")
	src.emit(store.Event{Type: watch.Added, Digest: "d2", Version: src.version})
	src.remove("d3")
	src.emit(store.Event{Type: watch.Deleted, Digest: "d3", Version: src.version})
	close(release)
	waitFor(t, c.listed)
	mustFind(t, c, "d2", "k2")
	// d3 was listed before its deletion and handed after it: the set keeps it, so it reads
	// the store, which refuses it.
	if _, err := lookup(t, c, "d3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a key deleted during the listing: %v", err)
	}
	before := src.lookupCount()
	if _, err := lookup(t, c, "unknown2"); !errors.Is(err, store.ErrNotFound) || src.lookupCount() != before {
		t.Errorf("an unknown key once the set is listed: %v, %d store reads; want ErrNotFound and none", err, src.lookupCount()-before)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range []string{"d1", "d2", "d3"} {
		if !c.digests.has(digestKey(d)) {
			t.Errorf("the set lacks %s", d)
		}
	}
}

// BenchmarkDigestSetMemory builds the set of a million keys' digests, as a replica holds it,
// and reports its heap size per digest.
func BenchmarkDigestSetMemory(b *testing.B) {
	const n = 1_000_000
	digests := make([]string, n)
	for i := range digests {
		digests[i] = store.Digest(strconv.Itoa(i))
	}
	var perDigest float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := make(digestSet)
		for _, d := range digests {
			s.add(digestKey(d))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perDigest = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perDigest, "bytes/digest")
	b.ReportMetric(perDigest*n/(1<<20), "MiB/million")
}
