package keycache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keygate-dev/keygate/extauthz/follow"
	"github.com/keygate-dev/keygate/internal/metricstest"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// fakeSource is a key store whose event stream the test drives: events sent on the channel are
// handed to the watcher; an error sent on fail ends the watch with it.
type fakeSource struct {
	mu      sync.Mutex
	keys    map[string]*v1.OwnedAccessKey
	lookups int
	// version is the store's version: every put and remove moves it, as every write does.
	version uint64
	// history names the store's history: a test that makes the store lose its data changes it,
	// so that the entries of the same versions differ (entry).
	history string
	// listing, when set, runs inside ListDigests after it took the keys, before it hands them.
	listing func()
	// versionRead, when set, runs inside Head after it read version.
	versionRead func(ctx context.Context) error
	// during, when set, runs inside LookupDigest after the store was read, to race with it.
	during func()

	events  chan store.Event
	fail    chan error
	watches chan struct{} // receives once per Watch call
}

func newFakeSource() *fakeSource {
	return &fakeSource{
		keys:    map[string]*v1.OwnedAccessKey{},
		events:  make(chan store.Event),
		fail:    make(chan error),
		watches: make(chan struct{}, 100),
	}
}

func (f *fakeSource) put(digest, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[digest] = &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}}
	f.version++
}

func (f *fakeSource) remove(digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, digest)
	f.version++
}

// entry is the fingerprint of the store's entry of version in its current history; the caller
// holds mu.
func (f *fakeSource) entry(version uint64) string {
	if version == 0 {
		return ""
	}
	return fmt.Sprintf("%s/%d", f.history, version)
}

// emit hands ev to the watcher and returns once it has been handled: the watcher handles events
// one by one, so a second event is received only after the first one's handler returned. An
// event of a version without an Entry gets the store's entry of that version.
func (f *fakeSource) emit(ev store.Event) {
	if ev.Version > 0 && ev.Entry == "" {
		f.mu.Lock()
		ev.Entry = f.entry(ev.Version)
		f.mu.Unlock()
	}
	f.events <- ev
	f.events <- store.Event{Type: watch.Modified, Digest: "barrier"}
}

func (f *fakeSource) LookupDigest(ctx context.Context, digest string) (*v1.OwnedAccessKey, error) {
	f.mu.Lock()
	f.lookups++
	k, ok := f.keys[digest]
	during := f.during
	f.mu.Unlock()
	if during != nil {
		during()
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return k, nil
}

func (f *fakeSource) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *fakeSource) Head(ctx context.Context) (store.Head, error) {
	f.mu.Lock()
	h, hook := store.Head{Version: f.version, Entry: f.entry(f.version)}, f.versionRead
	f.mu.Unlock()
	// The head is taken when the read begins: a hook that blocks models a slow read.
	if hook != nil {
		if err := hook(ctx); err != nil {
			return store.Head{}, err
		}
	}
	return h, nil
}

func (f *fakeSource) ListDigests(ctx context.Context, batch func([]string) error) error {
	f.mu.Lock()
	digests := make([]string, 0, len(f.keys))
	for d := range f.keys {
		digests = append(digests, d)
	}
	listing := f.listing
	f.mu.Unlock()
	if listing != nil {
		listing()
	}
	return batch(digests)
}

func (f *fakeSource) Watch(ctx context.Context, rv string, handle func(store.Event) error) error {
	f.watches <- struct{}{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.fail:
			return err
		case ev := <-f.events:
			if err := handle(ev); err != nil {
				return err
			}
		}
	}
}

// start runs a cache on src until the test ends, and waits until it follows the events.
func start(t *testing.T, src *fakeSource, opts Options) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
	}
	c := New(src, opts, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-src.watches
	waitFor(t, c.listed)
	return c, reg
}

// listed reports whether the digest set is listed and in use.
func (c *Cache) listed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.digests != nil
}

func lookup(t *testing.T, c *Cache, digest string) (*v1.OwnedAccessKey, error) {
	t.Helper()
	return c.LookupDigest(context.Background(), digest)
}

func mustFind(t *testing.T, c *Cache, digest, name string) {
	t.Helper()
	k, err := lookup(t, c, digest)
	if err != nil || k.Name != name {
		t.Fatalf("LookupDigest(%s) = %v, %v; want key %s", digest, k, err, name)
	}
}

func TestHitsAfterFirstLookup(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, reg := start(t, src, Options{})
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	if n := src.lookupCount(); n != 1 {
		t.Errorf("store read %d times for 3 lookups, want 1", n)
	}
	if got := testutil.ToFloat64(c.metrics.hits); got != 2 {
		t.Errorf("hits = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "keygate_extauthz_keycache_keys"); err != nil || n != 1 {
		t.Errorf("keycache_keys series = %d, %v", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("metric names: %v %v", problems, err)
	}
}

func TestUnknownKeysAreNotCached(t *testing.T) {
	src := newFakeSource()
	c, _ := start(t, src, Options{})
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	// Created after the first lookup: it must work at once, with no event needed.
	src.put("d1", "k1")
	mustFind(t, c, "d1", "k1")
}

func TestEventDropsTheKey(t *testing.T) {
	for _, typ := range []watch.EventType{watch.Deleted, watch.Modified, watch.Added} {
		t.Run(string(typ), func(t *testing.T) {
			src := newFakeSource()
			src.put("d1", "k1")
			src.put("d2", "k2")
			c, _ := start(t, src, Options{})
			mustFind(t, c, "d1", "k1")
			mustFind(t, c, "d2", "k2")
			src.remove("d1")
			src.emit(store.Event{Type: typ, Digest: "d1"})
			if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after the %s event: %v, want ErrNotFound from the store", typ, err)
			}
			before := src.lookupCount()
			mustFind(t, c, "d2", "k2")
			if src.lookupCount() != before {
				t.Error("an event for d1 also dropped d2")
			}
		})
	}
}

// A lookup that read the store just before a revocation, and whose answer arrives after the
// revocation's event, must not put the revoked key back into the cache.
func TestLookupRacingWithRevocationIsNotCached(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{})
	var once sync.Once
	src.during = func() {
		once.Do(func() {
			src.remove("d1")
			src.emit(store.Event{Type: watch.Deleted, Digest: "d1"}) // handled before we return
		})
	}
	if _, err := lookup(t, c, "d1"); err != nil {
		t.Fatalf("first lookup read the store before the deletion: %v", err)
	}
	src.during = nil
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked key served from the cache: %v", err)
	}
}

// Events for other keys during a lookup do not stop it being cached.
func TestLookupRacingWithOtherEventsIsCached(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{})
	var once sync.Once
	src.during = func() {
		once.Do(func() { src.emit(store.Event{Type: watch.Modified, Digest: "other"}) })
	}
	mustFind(t, c, "d1", "k1")
	src.during = nil
	mustFind(t, c, "d1", "k1")
	if n := src.lookupCount(); n != 1 {
		t.Errorf("store read %d times, want 1 (the second lookup should hit)", n)
	}
}

func TestBrokenStreamEmptiesTheCacheAndBypassesIt(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	// The retry waits long enough to observe the bypass.
	c, _ := start(t, src, Options{MinBackoff: time.Hour, MaxBackoff: time.Hour})
	mustFind(t, c, "d1", "k1")
	src.fail <- errors.New("connection reset")
	// Until the stream is followed again nothing is served from memory: a key revoked while
	// no events arrive is refused at once.
	waitFor(t, func() bool { return !c.Live() })
	if c.Len() != 0 {
		t.Errorf("%d keys kept after the stream broke", c.Len())
	}
	src.remove("d1")
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lookup while not live: %v, want the store's ErrNotFound", err)
	}
	src.put("d1", "k1")
	before := src.lookupCount()
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	if src.lookupCount()-before != 2 {
		t.Errorf("lookups while not live were cached")
	}
	if got := testutil.ToFloat64(c.metrics.restarts.WithLabelValues("error")); got != 1 {
		t.Errorf("stream restarts{error} = %v, want 1", got)
	}
}

func TestFollowsAgainAfterABreak(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{})
	src.fail <- store.ErrExpired
	<-src.watches // the cache watches again (after 1ms)
	waitFor(t, c.Live)
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	if got := testutil.ToFloat64(c.metrics.restarts.WithLabelValues("resync")); got != 1 {
		t.Errorf("stream restarts{resync} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.hits); got != 1 {
		t.Errorf("hits = %v, want 1", got)
	}
}

func TestEntriesExpire(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, _ := start(t, src, Options{TTL: 30 * time.Second, Now: clock})
	mustFind(t, c, "d1", "k1")
	mu.Lock()
	now = now.Add(29 * time.Second)
	mu.Unlock()
	mustFind(t, c, "d1", "k1")
	if n := src.lookupCount(); n != 1 {
		t.Fatalf("store read %d times within the TTL, want 1", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	src.remove("d1") // an event lost without the stream breaking
	if _, err := lookup(t, c, "d1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("entry served after its TTL: %v", err)
	}
}

func TestSizeBound(t *testing.T) {
	src := newFakeSource()
	for _, d := range []string{"a", "b", "c"} {
		src.put(d, "k-"+d)
	}
	c, _ := start(t, src, Options{Size: 2})
	mustFind(t, c, "a", "k-a")
	mustFind(t, c, "b", "k-b")
	mustFind(t, c, "a", "k-a") // a is now the most recently used
	mustFind(t, c, "c", "k-c") // evicts b
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
	before := src.lookupCount()
	mustFind(t, c, "a", "k-a")
	if src.lookupCount() != before {
		t.Error("the most recently used key was evicted")
	}
	mustFind(t, c, "b", "k-b")
	if src.lookupCount() != before+1 {
		t.Error("the least recently used key was not evicted")
	}
}

func TestDisabled(t *testing.T) {
	src := newFakeSource()
	src.put("d1", "k1")
	c := New(src, Options{Size: -1}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if c.Enabled() {
		t.Fatal("Size -1: cache enabled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d1", "k1")
	if n := src.lookupCount(); n != 2 {
		t.Errorf("store read %d times, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// A cached key with ttlAfterLastActivity carries this replica's newest use, not the stored
// time, which lags behind while the key is cached.
func TestRecordMovesLastActivity(t *testing.T) {
	src := newFakeSource()
	stored := time.Unix(1_000_000, 0).UTC()
	src.keys["d1"] = &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "k1"},
		Spec:       v1.OwnedAccessKeySpec{TTL: 3600, TTLAfterLastActivity: true},
		Status:     v1.OwnedAccessKeyStatus{LastActivity: &metav1.Time{Time: stored}},
	}
	src.keys["d2"] = &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "k2"}}
	c, _ := start(t, src, Options{})
	mustFind(t, c, "d1", "k1")
	mustFind(t, c, "d2", "k2")

	c.Record("d1", stored.Add(-time.Minute)) // older than stored: no change
	if k, _ := lookup(t, c, "d1"); !k.Status.LastActivity.Time.Equal(stored) {
		t.Errorf("lastActivity = %v after an older use, want %v", k.Status.LastActivity, stored)
	}
	used := stored.Add(time.Minute)
	c.Record("d1", used)
	c.Record("d1", stored.Add(30*time.Second)) // out of order: the newest wins
	k, _ := lookup(t, c, "d1")
	if !k.Status.LastActivity.Time.Equal(used) {
		t.Errorf("lastActivity = %v, want the recorded use %v", k.Status.LastActivity, used)
	}
	if !src.keys["d1"].Status.LastActivity.Time.Equal(stored) {
		t.Error("the cached object itself was modified")
	}
	c.Record("d2", used)
	if k, _ := lookup(t, c, "d2"); k.Status.LastActivity != nil {
		t.Errorf("a key without ttlAfterLastActivity got lastActivity %v", k.Status.LastActivity)
	}
	c.Record("unknown", used) // not cached: nothing to do, and no panic
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A ttlAfterLastActivity key that expires within the cache's TTL is read from the store on every
// lookup, so that a use another replica recorded counts here as soon as it is stored.
func TestKeysNearExpiryAreReadAgain(t *testing.T) {
	src := newFakeSource()
	now := time.Unix(1_000_000, 0)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	src.keys["fresh"] = &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh", CreationTimestamp: metav1.Time{Time: now.Add(-2 * time.Hour)}},
		Spec:       v1.OwnedAccessKeySpec{TTL: 3600, TTLAfterLastActivity: true},
		Status:     v1.OwnedAccessKeyStatus{LastActivity: at(-time.Minute)},
	}
	src.keys["near"] = &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "near", CreationTimestamp: metav1.Time{Time: now.Add(-2 * time.Hour)}},
		Spec:       v1.OwnedAccessKeySpec{TTL: 3600, TTLAfterLastActivity: true},
		Status:     v1.OwnedAccessKeyStatus{LastActivity: at(-3590 * time.Second)},
	}
	src.keys["expired"] = &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "expired", CreationTimestamp: metav1.Time{Time: now.Add(-2 * time.Hour)}},
		Spec:       v1.OwnedAccessKeySpec{TTL: 3600, TTLAfterLastActivity: true},
	}
	c, _ := start(t, src, Options{TTL: 30 * time.Second, Now: func() time.Time { return now }})
	reads := func(digest string) int {
		before := src.lookupCount()
		mustFind(t, c, digest, digest)
		mustFind(t, c, digest, digest)
		return src.lookupCount() - before
	}
	if n := reads("fresh"); n != 1 {
		t.Errorf("a key an hour from expiry: %d store reads for 2 lookups, want 1", n)
	}
	if n := reads("near"); n != 2 {
		t.Errorf("a key 10s from expiry: %d store reads for 2 lookups, want 2", n)
	}
	if n := reads("expired"); n != 2 {
		t.Errorf("an expired key: %d store reads for 2 lookups, want 2", n)
	}
	// Another replica's use reaches the store: the next lookup sees it.
	src.mu.Lock()
	src.keys["expired"] = &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "expired", CreationTimestamp: metav1.Time{Time: now.Add(-2 * time.Hour)}},
		Spec:       v1.OwnedAccessKeySpec{TTL: 3600, TTLAfterLastActivity: true},
		Status:     v1.OwnedAccessKeyStatus{LastActivity: at(-time.Second)},
	}
	src.mu.Unlock()
	if k, _ := lookup(t, c, "expired"); k.Status.LastActivity == nil {
		t.Error("a use recorded elsewhere was not seen")
	}
	// The MaxTTL cap counts too: with a 1-minute cap the fresh key is near its expiry.
	c2, _ := start(t, src, Options{TTL: 30 * time.Second, MaxTTL: time.Minute, Now: func() time.Time { return now }})
	before := src.lookupCount()
	mustFind(t, c2, "fresh", "fresh")
	mustFind(t, c2, "fresh", "fresh")
	if n := src.lookupCount() - before; n != 2 {
		t.Errorf("with --max-ttl 1m, a key used a minute ago: %d reads, want 2", n)
	}
}

// TestEvictionsCounted: a full cache that drops a key to make room says so, so that an operator
// can tell a cache too small for the keys in use from one that works.
func TestEvictionsCounted(t *testing.T) {
	src := newFakeSource()
	for _, d := range []string{"a", "b", "c"} {
		src.put(d, "k-"+d)
	}
	c, reg := start(t, src, Options{Size: 2})
	mustFind(t, c, "a", "k-a")
	mustFind(t, c, "b", "k-b")
	if got := testutil.ToFloat64(c.metrics.evictions); got != 0 {
		t.Fatalf("evictions = %v before the cache was full, want 0", got)
	}
	mustFind(t, c, "c", "k-c")
	if got := testutil.ToFloat64(c.metrics.evictions); got != 1 {
		t.Errorf("evictions = %v after a third key in a cache of 2, want 1", got)
	}
	metricstest.Lint(t, reg)
}

// TestLagObserved: each event's age when the cache drops its key lands in the lag histogram,
// measured from the event's own time (Redis's clock), not from when the cache read it.
func TestLagObserved(t *testing.T) {
	now := time.Now()
	lag := follow.NewLag(nil)
	src := newFakeSource()
	src.put("d1", "k1")
	c, _ := start(t, src, Options{Now: func() time.Time { return now }, Lag: lag.WithLabelValues(follow.StreamAccessKeys)})
	mustFind(t, c, "d1", "k1")
	src.emit(store.Event{Type: watch.Deleted, Digest: "d1", At: now.Add(-3 * time.Second)})
	var m dto.Metric
	if err := lag.WithLabelValues(follow.StreamAccessKeys).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	// The barrier event of emit has no time and is not observed.
	if h := m.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 3 {
		t.Errorf("lag histogram: %d samples summing to %vs, want 1 of 3s", h.GetSampleCount(), h.GetSampleSum())
	}
}
