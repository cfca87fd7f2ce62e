package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// ErrExpired: the events after the requested resourceVersion are no longer kept (the stream
// holds about Options.EventHistory of them). The caller lists again and watches from there, as
// Kubernetes clients do on 410 Gone.
var ErrExpired = changelog.ErrExpired

// ErrTooNew: the requested resourceVersion has not been handed out yet.
var ErrTooNew = changelog.ErrTooNew

// Event is one change to a key.
type Event struct {
	// Type is watch.Added, watch.Modified or watch.Deleted.
	Type watch.EventType
	// Key is the object after the change (before it, for a deletion), with the change's
	// resourceVersion.
	Key *v1.OwnedAccessKey
	// Digest identifies the key material, e.g. to drop the key from a cache.
	Digest string
	// Version is the change's resourceVersion (Key.ResourceVersion, as a number): a follower
	// that handled it has seen every change up to it.
	Version uint64
	// At is when Redis logged the change (zero for entries older than the field), so that a
	// follower can tell how late it applies it.
	At time.Time
	// Entry is the change log entry's changelog.Fingerprint, which Head returns for the newest
	// one: a follower compares them to tell its history from another under the same versions.
	Entry string
}

// Head is the access keys' newest change (changelog.Head).
type Head = changelog.Head

// changes is the access keys' change log (keystore/changelog), which the scripts of store.go
// append to.
func (s *Store) changes() changelog.Log {
	return changelog.Log{RDB: s.rdb, Version: rvKey, Events: eventsKey, What: "access keys"}
}

// CurrentVersion is the last resourceVersion handed out ("0" before the first change): one GET
// of a counter.
func (s *Store) CurrentVersion(ctx context.Context) (string, error) {
	return s.changes().Current(ctx)
}

// Head is the last resourceVersion handed out and the fingerprint of its change log entry, read
// in one transaction of two O(1) commands (GET, XREVRANGE of one entry), so that extauthz can
// afford one per batch of unknown keys and tell whether the store is at the very change it
// applied (keycache).
func (s *Store) Head(ctx context.Context) (Head, error) {
	return s.changes().Head(ctx)
}

// Watch calls handle with every change after resourceVersion, in order, until ctx ends (it then
// returns nil), handle returns an error (returned), Redis fails, or the events needed are gone
// (ErrExpired). Resource versions are contiguous, so a gap is detected exactly.
func (s *Store) Watch(ctx context.Context, resourceVersion string, handle func(Event) error) error {
	from, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: resourceVersion %q is not a number", ErrInvalid, resourceVersion)
	}
	return s.changes().Watch(ctx, from, func(_ uint64, m redis.XMessage) error {
		ev, err := decodeEvent(m)
		if err != nil {
			return err
		}
		return handle(ev)
	})
}

func decodeEvent(m redis.XMessage) (Event, error) {
	str := func(k string) string { return changelog.Field(m, k) }
	version := changelog.Version(m.ID)
	rv := strconv.FormatUint(version, 10)
	rec, err := decode(str("record"), rv, str("activity"))
	if err != nil {
		return Event{}, fmt.Errorf("watch access keys: event %s: %w", m.ID, err)
	}
	ev := Event{Type: watch.EventType(str("type")), Key: rec.Key, Digest: str("digest"), Version: version, At: changelog.At(m),
		Entry: changelog.Fingerprint(m)}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted:
		return ev, nil
	}
	return Event{}, fmt.Errorf("watch access keys: event %s has unknown type %q", m.ID, ev.Type)
}
