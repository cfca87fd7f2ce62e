package keycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/keygate-dev/keygate/keystore/store"
)

// Unknown keys are answered from the digest set, the digests of every key in the store, kept
// by each replica like its entries: listed each time the stream is followed (after reading the
// store's version, so the changes after it bring the list up to date: startDigests) and
// patched by every event: an added or modified key's digest is added, a deleted key's removed.
// Adding and removing are idempotent, so a change that the list already reflects does no harm.
// Until it is listed, and whenever the stream is not followed, the set is not used: lookups
// read Redis, as they did before the set.
//
// A digest outside the set is refused without reading it from Redis, but only once the replica
// knows it is neither behind nor on another history: a read of the store's newest change (its
// version and change log entry: store.Head) that began after the lookup arrived returned the
// very entry the follower applied under that version (history.go), not merely its number. A
// key acknowledged as created before the lookup arrived has a version at most that one, in the
// history the follower applied, so its digest is in the set by then: a new key works at once
// on every replica, as when every lookup read Redis. Those reads are batched (versionAfterNow):
// at most one is in flight per replica, and the lookups that arrive while it is join the next
// one, never one that began before them. A flood of made-up keys therefore costs Redis at most
// one read (a GET and an XREVRANGE of one entry, in one transaction) in flight per replica,
// however fast it comes.
//
// The set also notices Redis losing its data: a version read below what the follower applied
// means the store went back in time, and another entry (or none) under a version the follower
// applied means it lost data and took as many new changes; the cache then empties itself
// (entries and set) and follows again from the store's current version (lose).

// digestSet holds each digest as its first 16 bytes: the first 8 are the map key, the next 8
// (with the low bit set) its value. Digests that share their first 8 bytes share a slot whose
// value is then shared: such a slot stays until the set is listed again, since a deletion
// cannot tell which of them went. So the set never loses a digest it holds; it may hold a
// deleted one, which only sends that digest to Redis, as without the set. Two digests equal in
// their first 127 bits would be taken for one: for SHA-256 digests of keys, as unlikely as the
// key store's own assumption that different keys have different digests.
type digestSet map[uint64]uint64

const shared = 0

// digestKey is the slot and value of digest: parsed from its first 32 hex digits, or for a
// digest that is not hex (tests) from a hash of it.
func digestKey(digest string) (k, v uint64) {
	if len(digest) >= 32 {
		a, err := strconv.ParseUint(digest[:16], 16, 64)
		b, err2 := strconv.ParseUint(digest[16:32], 16, 64)
		if err == nil && err2 == nil {
			return a, b | 1
		}
	}
	h := fnv.New128a()
	_, _ = h.Write([]byte(digest))
	sum := h.Sum(nil)
	return binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:]) | 1
}

func (s digestSet) add(k, v uint64) {
	if old, ok := s[k]; ok && old != v {
		v = shared
	}
	s[k] = v
}

func (s digestSet) remove(k, v uint64) {
	if old, ok := s[k]; ok && old == v {
		delete(s, k)
	}
}

func (s digestSet) has(k, v uint64) bool {
	old, ok := s[k]
	return ok && (old == v || old == shared)
}

// Defaults of Options.
const (
	DefaultCatchUp = 50 * time.Millisecond
	// versionReadTimeout bounds one read of the store's version; the lookups waiting for it
	// leave earlier if their own context ends.
	versionReadTimeout = 2 * time.Second
)

// Fallback reasons, the values of keycache_absent_fallbacks_total's reason label.
const (
	fallbackLagging = "lagging" // the store was ahead of the follower, which did not catch up in time
	fallbackError   = "error"   // the version read failed or could not be judged, or the lookup's context ended
	fallbackResync  = "resync"  // the stream broke (the set was dropped) meanwhile, or the read showed Redis lost data
)

var fallbackReasons = []string{fallbackLagging, fallbackError, fallbackResync}

// absent reports whether the key with digest (k, v) was proven absent from the store: a read of
// the store's newest change that began after this call returned one the follower applied (the
// same entry, not only the same version), and the set, of the same epoch, lacks the digest.
// Otherwise the caller reads Redis.
func (c *Cache) absent(ctx context.Context, k, v uint64) bool {
	r := c.versionAfterNow()
	select {
	case <-r.done:
	case <-ctx.Done():
		c.metrics.fallbacks[fallbackError].Inc()
		return false
	}
	if r.err != nil {
		c.metrics.fallbacks[fallbackError].Inc()
		return false
	}
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		switch {
		case !c.live || c.digests == nil || c.epoch != r.epoch:
			// Dropped, or listed again, since the read began: its history is not this set's.
			c.mu.Unlock()
			c.metrics.fallbacks[fallbackResync].Inc()
			return false
		case c.digests.has(k, v):
			c.mu.Unlock()
			return false // created meanwhile: read it
		}
		if verdict := judge(r.head, c.applied, &c.history); verdict != ahead {
			c.mu.Unlock()
			return c.settle(r, verdict)
		}
		if c.advanced == nil {
			c.advanced = make(chan struct{})
		}
		advanced := c.advanced
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.opts.CatchUp)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-advanced:
		case <-timeout:
			c.metrics.fallbacks[fallbackLagging].Inc()
			return false
		case <-ctx.Done():
			c.metrics.fallbacks[fallbackError].Inc()
			return false
		}
	}
}

// settle is absent's answer once the follower applied the version read r returned.
func (c *Cache) settle(r *versionRead, verdict verdict) bool {
	switch verdict {
	case current:
		return true
	case diverged:
		// The follower applied another entry under that version after the read: it is on the
		// history Redis lost.
		c.lose(r.epoch, errDiverged(r.head.Version))
		c.metrics.fallbacks[fallbackResync].Inc()
	default:
		c.metrics.fallbacks[fallbackError].Inc()
	}
	return false
}

// wake tells the lookups waiting for the follower that it moved; the caller holds mu.
func (c *Cache) wake() {
	if c.advanced != nil {
		close(c.advanced)
		c.advanced = nil
	}
}

// dropDigests forgets the set, and stops listing one; the caller holds mu.
func (c *Cache) dropDigests() {
	if c.stopBuild != nil {
		c.stopBuild()
	}
	c.digests, c.building, c.stopBuild = nil, nil, nil
	c.epoch++
	c.wake()
}

// versionRead is one read of the store's newest change, shared by the lookups that joined it.
type versionRead struct {
	done  chan struct{} // closed when head, epoch and err are set
	head  store.Head
	epoch uint64 // the set's epoch when the read began
	err   error
}

// versionAfterNow returns a read of the store's version that begins after this call: the next
// one, joined by every lookup that arrives while the current one is in flight. At most one
// read is in flight at a time.
func (c *Cache) versionAfterNow() *versionRead {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	if c.vnext == nil {
		c.vnext = &versionRead{done: make(chan struct{})}
	}
	r := c.vnext
	switch {
	case !c.vrunning:
		c.vrunning = true
		go c.readVersions()
	case c.vkick != nil:
		select { // the reader lingers: wake it (a wake-up already pending will do)
		case c.vkick <- struct{}{}:
		default:
		}
	}
	return r
}

// readerLinger is how long the reader of versions waits for the next lookup before it ends (a
// variable for BenchmarkUnknownKeys, which compares it with none).
// Under a flood of unknown keys it so stays one goroutine with the stack go-redis grew, where a
// goroutine per read spent a sixth of the read's CPU growing a new stack (runtime.copystack in
// bench/authz's profiles); an idle replica still has no reader.
var readerLinger = 100 * time.Millisecond

// readVersions runs the pending read, and then the next one as long as lookups join it,
// lingering readerLinger for one before it ends.
func (c *Cache) readVersions() {
	c.vmu.Lock()
	if c.vkick == nil {
		c.vkick = make(chan struct{}, 1)
	}
	kick := c.vkick
	c.vmu.Unlock()
	idle := time.NewTimer(readerLinger)
	defer idle.Stop()
	for {
		c.vmu.Lock()
		r := c.vnext
		c.vnext = nil
		c.vmu.Unlock()
		if r != nil {
			// Every lookup that joined r did so before this point: the read begins after them.
			r.head, r.epoch, r.err = c.readVersion()
			close(r.done)
			continue
		}
		idle.Reset(readerLinger)
		select {
		case <-kick:
		case <-idle.C:
			c.vmu.Lock()
			if c.vnext == nil {
				c.vrunning = false
				c.vmu.Unlock()
				return
			}
			c.vmu.Unlock()
		}
	}
}

// readVersion reads the store's newest change, with the set's epoch when the read began, and
// checks it against the follower's history: a version below what it had applied before the
// read began (events Redis had already sent) means the store went back in time; another entry
// under a version it applied, that the store lost data and took as many new changes.
func (c *Cache) readVersion() (store.Head, uint64, error) {
	c.mu.Lock()
	epoch, before := c.epoch, c.applied
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), versionReadTimeout)
	defer cancel()
	c.metrics.versionReads.Inc()
	head, err := c.src.Head(ctx)
	if err != nil {
		return store.Head{}, epoch, err
	}
	c.mu.Lock()
	following := c.epoch == epoch && c.digests != nil
	lost := c.lostData(head, before)
	c.mu.Unlock()
	if following && lost != nil {
		c.lose(epoch, lost)
	}
	return head, epoch, nil
}

// lostData is why head, the store's newest change read when the follower had applied before,
// shows that Redis lost data, or nil: a version below before means the store went back in
// time; another entry under a version the follower applied, that it lost data and took as many
// new changes. The caller holds mu.
func (c *Cache) lostData(head store.Head, before uint64) error {
	switch {
	case head.Version < before:
		return fmt.Errorf("%w: the access-key store is at resourceVersion %d, behind %d already applied (Redis lost data?)", store.ErrExpired, head.Version, before)
	case judge(head, c.applied, &c.history) == diverged:
		return errDiverged(head.Version)
	}
	return nil
}

func errDiverged(version uint64) error {
	return fmt.Errorf("%w: the access-key store holds another change under resourceVersion %d than the one applied (Redis lost data?)", store.ErrExpired, version)
}

// lose empties the cache (entries and set) and ends the current watch with err, so that the
// follower lists and follows again from the store's current version; unless the set read in
// epoch was already dropped.
func (c *Cache) lose(epoch uint64, err error) {
	c.mu.Lock()
	if epoch != c.epoch || c.digests == nil {
		c.mu.Unlock()
		return
	}
	c.lost = err
	c.lru.Purge()
	c.recent.Purge()
	c.live = false
	c.dropDigests()
	stop := c.stopWatch
	c.mu.Unlock()
	if stop != nil {
		stop(err)
	}
}

// startDigests is follow's Start: with the store at version, before the changes after it are
// followed, it starts listing every digest the store holds. The listing runs while the
// changes are followed, so that the entries are served and revocations applied meanwhile as
// without the set; those changes patch the set being listed too. The set is used once the
// listing is done. Listing only adds, so a listing that crossed a deletion can only keep a
// digest that went (which then reads Redis, as without the set), never miss one that stayed:
// HSCAN returns every field present for the whole scan.
func (c *Cache) startDigests(ctx context.Context, version string) error {
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return fmt.Errorf("access-key store version %q: %w", version, err)
	}
	ctx, stop := context.WithCancel(ctx)
	set := make(digestSet)
	c.mu.Lock()
	c.dropDigests()
	c.building, c.stopBuild, c.applied, c.lost = set, stop, v, nil
	entry := ""
	if c.startHead.Version == v {
		entry = c.startHead.Entry
	}
	c.history.reset(v, entry)
	epoch := c.epoch
	c.mu.Unlock()
	go c.build(ctx, epoch, set, version)
	return nil
}

// errDropped ends a listing whose set was dropped (the stream broke) meanwhile.
var errDropped = errors.New("digest set dropped")

// build lists the digests into set, retrying with backoff until it is done or the set dropped,
// and then makes it the set in use.
func (c *Cache) build(ctx context.Context, epoch uint64, set digestSet, version string) {
	began := time.Now()
	backoff := c.opts.MinBackoff
	for {
		err := c.src.ListDigests(ctx, func(digests []string) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.epoch != epoch {
				return errDropped
			}
			for _, d := range digests {
				set.add(digestKey(d))
			}
			return nil
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, errDropped) {
			return
		}
		c.log.Warn("listing access-key digests failed: unknown keys are looked up in Redis until it succeeds",
			"error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	c.digests, c.building, c.stopBuild = set, nil, nil
	c.wake()
	c.kickRenewal() // a lease's word counts only for a set listed when it was renewed
	c.log.Info("listed access-key digests: unknown keys are refused from memory", "digests", len(set),
		"from_version", version, "took", time.Since(began).Round(time.Millisecond).String())
}

// stream is the Source as follow sees it: its CurrentVersion keeps the head it read, for the
// history to start from (startDigests), and its Watch also ends when lose says so.
type stream struct{ c *Cache }

func (s stream) CurrentVersion(ctx context.Context) (string, error) {
	h, err := s.c.src.Head(ctx)
	if err != nil {
		return "", err
	}
	s.c.mu.Lock()
	s.c.startHead = h
	s.c.mu.Unlock()
	return strconv.FormatUint(h.Version, 10), nil
}

func (s stream) Watch(ctx context.Context, version string, handle func(store.Event) error) error {
	c := s.c
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	c.mu.Lock()
	c.stopWatch = stop
	if c.lost != nil {
		stop(c.lost)
	}
	c.mu.Unlock()
	err := c.src.Watch(wctx, version, handle)
	c.mu.Lock()
	c.stopWatch = nil
	c.mu.Unlock()
	if ctx.Err() == nil {
		if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
	}
	return err
}
