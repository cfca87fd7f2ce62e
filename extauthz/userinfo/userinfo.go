// Package userinfo tells extauthz what the user store says about a key's user: the user's
// groups, which travel upstream with the key's own, and whether the user is disabled. Answers
// are cached for a short time, so that a busy key costs no extra Redis round trip.
//
// Users that the store does not know are normal: keys may be made for users of an external
// identity provider. Such a key carries only its own groups.
package userinfo

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/keygate-dev/keygate/keystore/users"
)

// Source is the user store (users.Store in production).
type Source interface {
	Get(ctx context.Context, name string) (*users.User, error)
}

// Info is what a request needs to know of its user.
type Info struct {
	// Known: the user store has the user.
	Known bool
	// Disabled users' keys are refused.
	Disabled bool
	// Groups are the user's groups in the user store.
	Groups []string
}

// Defaults of Options.
const (
	DefaultSize = 10_000
	DefaultTTL  = 30 * time.Second
)

// Options configure a Directory.
type Options struct {
	// Size is the most users held; 0 means DefaultSize, negative turns caching off.
	Size int
	// TTL is how long an answer is used: a change to a user (groups, disabled) reaches the edge
	// within TTL. 0 means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Directory answers Lookup from a cache in front of a Source. Safe for concurrent use.
type Directory struct {
	src   Source
	opts  Options
	cache *lru.Cache[string, entry]
}

type entry struct {
	info    Info
	fetched time.Time
}

// New returns a directory in front of src.
func New(src Source, opts Options) *Directory {
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Directory{src: src, opts: opts}
	if opts.Size > 0 {
		d.cache, _ = lru.New[string, entry](opts.Size) // fails only for a size below 1
	}
	return d
}

// Lookup returns what the store says of the user named name. An error means the store could not
// answer; the caller fails closed.
func (d *Directory) Lookup(ctx context.Context, name string) (Info, error) {
	now := d.opts.Now()
	if d.cache != nil {
		if e, ok := d.cache.Get(name); ok && now.Sub(e.fetched) < d.opts.TTL {
			return e.info, nil
		}
	}
	var info Info
	u, err := d.src.Get(ctx, name)
	switch {
	case errors.Is(err, users.ErrNotFound):
	case err != nil:
		return Info{}, err
	default:
		info = Info{Known: true, Disabled: u.Disabled, Groups: u.Groups}
	}
	if d.cache != nil {
		d.cache.Add(name, entry{info: info, fetched: now})
	}
	return info, nil
}
