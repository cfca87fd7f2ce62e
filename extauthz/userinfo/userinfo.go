// Package userinfo tells extauthz what the user store says about a key's user: whether the
// store has them, their UID (to tell a key of this user from one of a deleted user of the same
// name), their groups and whether they are disabled. Answers are cached in memory, so that a
// busy key costs no extra Redis round trip, and dropped the moment the user store reports a
// change to that user, exactly as extauthz/keycache does for keys (extauthz/follow):
//   - answers are served from memory only while the user store's change stream is followed;
//     when it breaks, everything is dropped and every lookup reads Redis until it is followed
//     again;
//   - every change event drops its user's answer; nothing is taken from the event itself;
//   - a lookup keeps its answer only if no event for that user arrived while it read Redis;
//   - every answer is also dropped after Options.TTL, a safety net for a stream that stalls
//     without breaking, or a write whose event was never appended (see keystore/users).
//
// Users that the store does not know are normal: keys may be made for users of an external
// identity provider. "Unknown" is cached too, and dropped when the user is created.
package userinfo

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/extauthz/follow"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Source is the user store (users.Store in production).
type Source interface {
	Get(ctx context.Context, name string) (*users.User, error)
	// CurrentVersion is the store's last change; Watch from it sees every later change.
	CurrentVersion(ctx context.Context) (string, error)
	Watch(ctx context.Context, version string, handle func(users.Event) error) error
}

// Info is what a request needs to know of its user: what accesskey.CheckOwner judges a key by.
type Info = accesskey.Owner

// Defaults of Options.
const (
	DefaultSize = 10_000
	DefaultTTL  = 30 * time.Second
)

// Options configure a Directory.
type Options struct {
	// Size is the most users held; 0 means DefaultSize, negative turns caching off.
	Size int
	// TTL is the longest an answer is served without reading the store again, even if no
	// event dropped it. 0 means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MinBackoff and MaxBackoff bound the wait before following the stream again after it
	// broke; 0 means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Lag, when set, observes each change's age when it is applied (follow.NewLag).
	Lag prometheus.Observer
}

// Directory answers Lookup from a cache in front of a Source. Safe for concurrent use; Run must
// be running for it to cache anything.
type Directory struct {
	src  Source
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	lru    *simplelru.LRU[string, entry]
	live   bool
	recent follow.Recent
}

type entry struct {
	info    Info
	fetched time.Time
}

// New returns a directory in front of src; log (nil: discarded) hears when following the
// store's changes starts and breaks.
func New(src Source, opts Options, log *slog.Logger) *Directory {
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Directory{src: src, opts: opts, log: log}
	if opts.Size > 0 {
		d.lru, _ = simplelru.NewLRU[string, entry](opts.Size, nil) // fails only for a size below 1
	}
	return d
}

// Lookup returns what the store says of the user named name. An error means the store could not
// answer; the caller fails closed.
func (d *Directory) Lookup(ctx context.Context, name string) (Info, error) {
	if d.lru == nil {
		return d.read(ctx, name)
	}
	now := d.opts.Now()
	d.mu.Lock()
	if d.live {
		if e, ok := d.lru.Get(name); ok && now.Sub(e.fetched) < d.opts.TTL {
			d.mu.Unlock()
			return e.info, nil
		}
	}
	live, gen := d.live, d.recent.Gen()
	d.mu.Unlock()

	info, err := d.read(ctx, name)
	if err != nil || !live {
		return info, err
	}
	d.mu.Lock()
	if d.live && !d.recent.ChangedSince(gen, name) {
		d.lru.Add(name, entry{info: info, fetched: now})
	}
	d.mu.Unlock()
	return info, nil
}

func (d *Directory) read(ctx context.Context, name string) (Info, error) {
	u, err := d.src.Get(ctx, name)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return Info{}, nil
	case err != nil:
		return Info{}, err
	}
	return Info{Known: true, UID: u.UID, Disabled: u.Disabled, Groups: u.Groups}, nil
}

// Live reports whether the user store's changes are being followed, i.e. whether answers are
// served from memory.
func (d *Directory) Live() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.live
}

// Run follows the user store's changes until ctx ends, and returns nil then. When following
// breaks it drops every answer, logs, and starts again with backoff. It does nothing when
// caching is off.
func (d *Directory) Run(ctx context.Context) error {
	if d.lru == nil {
		<-ctx.Done()
		return nil
	}
	return follow.Run(ctx, d.src, d.handle, d.log, follow.Options{
		What: "user", MinBackoff: d.opts.MinBackoff, MaxBackoff: d.opts.MaxBackoff, SetLive: d.setLive,
	})
}

// handle drops the answer for the user an event names.
func (d *Directory) handle(ev users.Event) error {
	d.mu.Lock()
	d.recent.Add(ev.Name)
	d.lru.Remove(ev.Name)
	d.mu.Unlock()
	follow.ObserveLag(d.opts.Lag, ev.At, d.opts.Now())
	return nil
}

// setLive drops every answer and starts or stops serving from memory; lookups in flight do not
// keep what they read.
func (d *Directory) setLive(live bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lru.Purge()
	d.recent.Purge()
	d.live = live
}
