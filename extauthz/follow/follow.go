// Package follow is what extauthz's caches (keycache for access keys, userinfo for users) share
// to stay honest with a store's change stream:
//   - Run follows the stream, tells the cache when it is live (entries may be served) and when
//     it broke (drop everything, read the store until it is followed again), and retries with
//     backoff;
//   - Recent remembers the latest invalidations, so that a lookup keeps what it read only if no
//     change to the same thing arrived while it read the store.
//
// The caches stay small and specific; the rules they rest on are written once, here.
package follow

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// RecentSize is how many of the latest invalidations Recent remembers. A lookup that saw more
// changes than this while it read the store is simply not kept.
const RecentSize = 1024

// Recent is a ring of the latest invalidated keys and their count. It has no lock: the cache's
// own lock, which also guards its entries, guards it, so that "not changed meanwhile" and
// "store the entry" are one step.
type Recent struct {
	gen  uint64
	ring [RecentSize]string
}

// Gen is the count of invalidations so far; pass it to ChangedSince after reading the store.
func (r *Recent) Gen() uint64 { return r.gen }

// Add notes that key was invalidated.
func (r *Recent) Add(key string) {
	r.gen++
	r.ring[r.gen%RecentSize] = key
}

// Purge notes that everything was invalidated: every lookup in flight counts as changed.
func (r *Recent) Purge() { r.gen += RecentSize + 1 }

// ChangedSince reports whether key may have been invalidated after invalidation gen.
func (r *Recent) ChangedSince(gen uint64, key string) bool {
	if r.gen-gen > RecentSize {
		return true // too many to tell, or a purge
	}
	for g := gen + 1; g <= r.gen; g++ {
		if r.ring[g%RecentSize] == key {
			return true
		}
	}
	return false
}

// Stream is a store's change stream (store.Store, users.Store).
type Stream[E any] interface {
	// CurrentVersion is the last version; Watch from it sees every later change.
	CurrentVersion(ctx context.Context) (string, error)
	Watch(ctx context.Context, version string, handle func(E) error) error
}

// Options configure Run.
type Options struct {
	// What names the stream in logs, e.g. "access-key".
	What string
	// MinBackoff and MaxBackoff bound the wait before following again after the stream broke;
	// 0 means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Start, when set, is called with the store's current version before following the
	// changes after it, and before SetLive(true): e.g. to list what the store holds, which
	// the changes then keep up to date. Its error breaks the stream like a Redis error.
	Start func(ctx context.Context, version string) error
	// SetLive(true) is called once the stream is followed, before the first event; the cache
	// may serve entries from then on. SetLive(false) when it broke: the cache drops everything
	// and serves none.
	SetLive func(live bool)
	// Restarted, when set, is told of each break: "resync" (changes lost, e.g. the stream
	// trimmed past this replica or Redis lost data) or "error".
	Restarted func(reason string)
}

// Run follows s, passing every change to handle, until ctx ends; it returns nil then. A handle
// error breaks the stream like a Redis error does.
func Run[E any](ctx context.Context, s Stream[E], handle func(E) error, log *slog.Logger, o Options) error {
	minB, maxB := o.MinBackoff, o.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 5 * time.Second
	}
	backoff := minB
	for {
		started := time.Now()
		err := follow(ctx, s, handle, log, o)
		o.SetLive(false)
		if ctx.Err() != nil {
			return nil
		}
		reason := "error"
		if errors.Is(err, store.ErrExpired) || errors.Is(err, store.ErrTooNew) ||
			errors.Is(err, users.ErrExpired) || errors.Is(err, users.ErrTooNew) {
			reason = "resync"
		}
		if o.Restarted != nil {
			o.Restarted(reason)
		}
		if time.Since(started) > time.Minute {
			backoff = minB // it had been working: this is a new failure
		}
		log.Warn(o.What+" events interrupted: reading Redis on every check until they resume",
			"error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxB)
	}
}

// follow serves from memory while it follows the changes after the store's current version.
func follow[E any](ctx context.Context, s Stream[E], handle func(E) error, log *slog.Logger, o Options) error {
	rv, err := s.CurrentVersion(ctx)
	if err != nil {
		return err
	}
	if o.Start != nil {
		if err := o.Start(ctx, rv); err != nil {
			return err
		}
	}
	// Every change after rv reaches handle; whatever a lookup reads from now on is at least as
	// new as rv, so it may be cached.
	o.SetLive(true)
	log.Info("following "+o.What+" events: caching", "from_version", rv)
	err = s.Watch(ctx, rv, handle)
	if err == nil && ctx.Err() == nil {
		err = errors.New(o.What + " event stream ended")
	}
	return err
}
