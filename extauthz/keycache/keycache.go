// Package keycache keeps recently used access keys in memory, so that most checks cost no Redis
// round trip, and drops them the moment the key store reports a change.
//
// Correctness rests on three rules:
//   - Entries are served only while the store's event stream is being followed (the cache is
//     "live"). When the stream breaks (Redis down, events trimmed, a bad event) every entry is
//     dropped and lookups go straight to the store until the stream is followed again. A revoked
//     key therefore cannot outlive a broken stream in the cache.
//   - Every event (added, modified, deleted) drops its key's entry. The next lookup reads the
//     store again; nothing is patched from events, so an event can never make an entry wrong.
//   - A lookup stores its answer only if no event for that key (and no purge) happened while it
//     was reading the store, so a read that raced with a revocation is never cached.
//
// Unknown keys are not cached: a key works the moment it is created. They are refused instead
// from the digest set, every stored key's digest, which the same stream keeps up to date, and
// only once a read of the store's newest change shows the replica applied that very change (not
// only that version: a Redis that lost data hands the versions out again); digests.go tells
// how, and why a key created a moment ago still works at once on every replica. Every entry
// also expires after Options.TTL, a safety net for a stream that stalls without breaking.
package keycache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keygate-dev/keygate/extauthz/follow"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// Source is the key store (store.Store in production).
type Source interface {
	LookupDigest(ctx context.Context, digest string) (*v1.OwnedAccessKey, error)
	// Head is the store's last resourceVersion, from which Watch sees every later change, and
	// its change log entry's fingerprint (store.Event.Entry).
	Head(ctx context.Context) (store.Head, error)
	Watch(ctx context.Context, resourceVersion string, handle func(store.Event) error) error
	// ListDigests calls batch with the digests of the stored keys, a batch at a time.
	ListDigests(ctx context.Context, batch func(digests []string) error) error
}

// Defaults of Options.
const (
	DefaultSize = 100_000
	DefaultTTL  = 30 * time.Second
	// DefaultLease is extauthz's --digest-lease: below keystore's default wait for the
	// replicas (store.DefaultReplicaWait), and renewed every quarter of it.
	DefaultLease = time.Second
)

// Options configure a Cache.
type Options struct {
	// Size is the most keys held; 0 means DefaultSize, a negative value turns caching off
	// (every lookup reads the store).
	Size int
	// TTL is the longest an entry is served, even if no event dropped it; 0 means DefaultTTL.
	TTL time.Duration
	// MaxTTL is extauthz's --max-ttl, which caps keys' lifetimes (0: none).
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound the wait before following the stream again after it broke;
	// 0 means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Lag, when set, observes each change's age when it is applied (follow.NewLag).
	Lag prometheus.Observer
	// CatchUp is how long a lookup of a digest outside the digest set waits for the follower to
	// apply the store's version before it reads Redis instead; 0 means DefaultCatchUp.
	CatchUp time.Duration
	// Lease, when positive and the Source is a Leaser, is the lease this replica holds in the
	// store so that it refuses unknown keys without any read (lease.go); 0: no lease, every
	// batch of unknown keys reads the store's newest change.
	Lease time.Duration
}

// Cache is a store.Store in front of the store for LookupDigest. Its methods are safe for
// concurrent use; Run must be running for it to cache anything.
type Cache struct {
	src     Source
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu   sync.Mutex
	lru  *simplelru.LRU[string, *entry]
	live bool
	// recent tells a lookup whether its key changed while it read the store.
	recent follow.Recent

	// digests is every stored key's digest as of version applied (digests.go); nil until it is
	// listed, and whenever the stream is not followed. building is the set being listed, which
	// stopBuild abandons. applied is the last version the follower applied, and history the
	// last entries it applied (history.go); epoch counts the times a set was started or
	// dropped. startHead is the store's head the follower starts from (stream.CurrentVersion).
	digests   digestSet
	building  digestSet
	stopBuild context.CancelFunc
	applied   uint64
	history   history
	epoch     uint64
	startHead store.Head
	// advanced, when not nil, is closed when applied moves or digests is listed or dropped:
	// lookups waiting for the follower to catch up wait on it.
	advanced chan struct{}
	// lost is why the current watch must end (the store went back in time); stopWatch ends it.
	lost      error
	stopWatch context.CancelCauseFunc

	// vmu guards the batching of version reads (versionAfterNow).
	vmu      sync.Mutex
	vrunning bool
	vnext    *versionRead
	vkick    chan struct{} // wakes a lingering reader (readVersions)

	// leaser, when not nil, holds this replica's lease leaseID (lease.go); renewKick asks for
	// a renewal, and trust (guarded by mu) is what the last one proved.
	leaser    Leaser
	leaseID   string
	renewKick chan struct{}
	trust     trust
}

type entry struct {
	key     *v1.OwnedAccessKey
	fetched time.Time
	// lastUse (Unix nanoseconds) is the newest use this replica saw since fetching: the stored
	// status.lastActivity lags behind by up to a flush interval plus the entry's age.
	lastUse atomic.Int64
}

// New returns a cache in front of src and registers its metrics with reg (nil: none).
func New(src Source, opts Options, log *slog.Logger, reg prometheus.Registerer) *Cache {
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.CatchUp <= 0 {
		opts.CatchUp = DefaultCatchUp
	}
	c := &Cache{src: src, opts: opts, log: log}
	if l, ok := src.(Leaser); ok && opts.Lease > 0 && opts.Size >= 0 {
		c.leaser, c.leaseID, c.renewKick = l, leaseID(), make(chan struct{}, 1)
	}
	if opts.Size > 0 {
		// NewLRU fails only for a size below 1.
		c.lru, _ = simplelru.NewLRU[string, *entry](opts.Size, nil)
	}
	c.metrics = newMetrics(reg, c.Len, c.Live, c.Digests, c.Applied, c.Trusted)
	return c
}

// Enabled reports whether the cache holds keys at all (Options.Size is not negative).
func (c *Cache) Enabled() bool { return c.lru != nil }

// Len is the number of keys held.
func (c *Cache) Len() int {
	if c.lru == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Digests is the number of digests in the digest set (0 while it is being listed, and while
// the stream is not followed).
func (c *Cache) Digests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.digests)
}

// Live reports whether the store's events are being followed, i.e. whether entries are served.
func (c *Cache) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// Applied is the resourceVersion of the newest access-key change this replica applied, 0 while
// the cache is not live: a change is in force on this replica once Applied reached its version.
func (c *Cache) Applied() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return 0
	}
	return c.applied
}

// LookupDigest answers from memory when it can and from the store otherwise; errors, including
// store.ErrNotFound, come from the store and are never cached. store.ErrNotFound also comes
// from the digest set, for a digest the store is proven not to hold (digests.go).
func (c *Cache) LookupDigest(ctx context.Context, digest string) (*v1.OwnedAccessKey, error) {
	if c.lru == nil {
		return c.src.LookupDigest(ctx, digest)
	}
	now := c.opts.Now()
	c.mu.Lock()
	if c.live {
		if e, ok := c.lru.Get(digest); ok {
			if now.Sub(e.fetched) < c.opts.TTL {
				if k := e.view(); !c.nearExpiry(k, now) {
					c.mu.Unlock()
					c.metrics.hits.Inc()
					return k, nil
				}
			} else {
				c.lru.Remove(digest)
			}
		}
	}
	live, gen := c.live, c.recent.Gen()
	var unknown bool
	var dk, dv uint64
	if live && c.digests != nil {
		dk, dv = digestKey(digest)
		unknown = !c.digests.has(dk, dv)
		if unknown && c.trusted() {
			c.mu.Unlock()
			c.metrics.absent.Inc()
			return nil, store.ErrNotFound
		}
	}
	c.mu.Unlock()

	if unknown && c.absent(ctx, dk, dv) {
		c.metrics.absent.Inc()
		return nil, store.ErrNotFound
	}
	c.metrics.misses.Inc()
	k, err := c.src.LookupDigest(ctx, digest)
	if err != nil || !live {
		return k, err
	}
	e := &entry{key: k, fetched: now}
	c.mu.Lock()
	if old, ok := c.lru.Peek(digest); ok {
		// Read again near its expiry (an event would have removed it): keep this replica's
		// uses, which the store may not have yet.
		e.lastUse.Store(old.lastUse.Load())
	}
	if c.live && !c.recent.ChangedSince(gen, digest) && c.lru.Add(digest, e) {
		c.metrics.evictions.Inc()
	}
	c.mu.Unlock()
	return e.view(), nil
}

// nearExpiry reports whether k, a key with ttlAfterLastActivity, expires within the cache's
// TTL. Such a key is read from Redis on every check, so that a use recorded by another replica
// keeps it alive here as soon as it is flushed, as it would without the cache.
func (c *Cache) nearExpiry(k *v1.OwnedAccessKey, now time.Time) bool {
	if !k.Spec.TTLAfterLastActivity {
		return false
	}
	exp, ok := accesskey.Expiry(k, c.opts.MaxTTL)
	return ok && exp.Sub(now) < c.opts.TTL
}

// view is the cached key, with status.lastActivity moved to the newest use this replica saw, so
// that a key with ttlAfterLastActivity does not expire early while it is cached.
func (e *entry) view() *v1.OwnedAccessKey {
	used := e.lastUse.Load()
	if !e.key.Spec.TTLAfterLastActivity || used == 0 {
		return e.key
	}
	t := time.Unix(0, used)
	if la := e.key.Status.LastActivity; la != nil && !la.Time.Before(t) {
		return e.key
	}
	// A shallow copy is enough: only Status.LastActivity differs, and the cached object is
	// never modified.
	k := *e.key
	k.Status.LastActivity = &metav1.Time{Time: t}
	return &k
}

// Record notes that the key with digest was used at t (an allowed request). It is cheap: no I/O.
func (c *Cache) Record(digest string, t time.Time) {
	if c.lru == nil {
		return
	}
	c.mu.Lock()
	e, ok := c.lru.Peek(digest)
	c.mu.Unlock()
	if !ok {
		return
	}
	n := t.UnixNano()
	for {
		cur := e.lastUse.Load()
		if cur >= n || e.lastUse.CompareAndSwap(cur, n) {
			return
		}
	}
}

// invalidate drops digest's entry; the caller holds mu.
func (c *Cache) invalidate(digest string) {
	c.recent.Add(digest)
	c.lru.Remove(digest)
}

// setLive drops every entry and starts or stops serving from memory. Purging counts as more
// invalidations than are remembered, so that no lookup in flight stores what it read. Stopping
// also drops the digest set; the next Start lists it again.
func (c *Cache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
	c.recent.Purge()
	c.live = live && c.lost == nil
	if !live {
		c.dropDigests()
	}
}

// Run follows the store's events until ctx ends, and returns nil then. When following breaks,
// it drops every entry, logs, waits (with backoff) and starts again from the store's current
// version. It does nothing when caching is off.
func (c *Cache) Run(ctx context.Context) error {
	if c.lru == nil {
		<-ctx.Done()
		return nil
	}
	if c.leaser != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		ctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			defer close(done)
			c.holdLease(ctx, c.leaser)
		}()
	}
	return follow.Run(ctx, stream{c}, c.handle, c.log, follow.Options{
		What: "access-key", MinBackoff: c.opts.MinBackoff, MaxBackoff: c.opts.MaxBackoff,
		Start:     c.startDigests,
		SetLive:   c.setLive,
		Restarted: func(reason string) { c.metrics.restarts.WithLabelValues(reason).Inc() },
	})
}

// handle drops the key an event names, and adds its digest to the digest set or removes it;
// nothing else is taken from the event.
func (c *Cache) handle(ev store.Event) error {
	if ev.Digest == "" {
		return errors.New("access-key event without a digest")
	}
	c.mu.Lock()
	c.invalidate(ev.Digest)
	for _, set := range []digestSet{c.digests, c.building} {
		if set == nil {
			continue
		}
		if ev.Type == watch.Deleted {
			set.remove(digestKey(ev.Digest))
		} else {
			set.add(digestKey(ev.Digest))
		}
	}
	if ev.Version > c.applied {
		c.applied = ev.Version
		c.history.add(ev.Version, ev.Entry)
		c.wake()
	}
	c.mu.Unlock()
	if ev.Type == watch.Added {
		c.kickRenewal() // the store's create waits for this replica to say it applied the create
	}
	c.metrics.invalidations.Inc()
	follow.ObserveLag(c.opts.Lag, ev.At, c.opts.Now())
	return nil
}
