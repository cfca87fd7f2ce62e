package users

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/changelog"
)

// ErrExpired: the change entries after the requested version are no longer kept, or Redis lost
// data; the follower starts again from CurrentVersion (and forgets what it cached).
var ErrExpired = changelog.ErrExpired

// ErrTooNew: the requested version has not been handed out yet.
var ErrTooNew = changelog.ErrTooNew

// Types of Event.
const (
	EventAdded    = "ADDED"
	EventModified = "MODIFIED"
	EventDeleted  = "DELETED"
)

// Event is one change to a user. It names the user only: a follower reads the user again (or
// learns it is gone), so an event can never carry stale data.
type Event struct {
	// Type is EventAdded, EventModified or EventDeleted.
	Type string
	// Name is the user's name.
	Name string
	// Version is the change's version.
	Version uint64
	// At is when Redis logged the change (zero for entries older than the field).
	At time.Time
}

// Redis keys of the change stream; one hash tag, so appending is one script on Cluster.
const (
	eventsVersionKey = "keygate:{users}:rv"
	eventsKey        = "keygate:{users}:events"
)

func (s *Store) changes() changelog.Log {
	return changelog.Log{RDB: s.rdb, Version: eventsVersionKey, Events: eventsKey, What: "users"}
}

// changed appends the change entry of a write that succeeded, on the master of the stream's
// slot (and, with Options.Acks, waits for its replicas there). Its error says that the write
// itself stands, so that nobody retries a create into "already exists".
func (s *Store) changed(ctx context.Context, typ, name string) error {
	err := s.acks.Do(ctx, s.rdb, eventsKey, func(c redis.Cmdable) error {
		_, err := s.changes().AppendOn(ctx, c, s.history, "type", typ, "name", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("user %s was changed, but the edge could not be told (it sees the change within extauthz's --key-cache-ttl): %w", name, err)
	}
	return nil
}

// CurrentVersion is the version of the last change ("0" before the first); Watch from it sees
// every later change.
func (s *Store) CurrentVersion(ctx context.Context) (string, error) {
	return s.changes().Current(ctx)
}

// Watch calls handle with every change after version, in order, until ctx ends (it then
// returns nil), handle returns an error (returned), Redis fails, or the changes needed are gone
// (ErrExpired).
func (s *Store) Watch(ctx context.Context, version string, handle func(Event) error) error {
	from, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return fmt.Errorf("watch users: version %q is not a number", version)
	}
	return s.changes().Watch(ctx, from, func(rv uint64, m redis.XMessage) error {
		ev := Event{Type: changelog.Field(m, "type"), Name: changelog.Field(m, "name"), Version: rv, At: changelog.At(m)}
		switch {
		case ev.Name == "":
			return fmt.Errorf("watch users: event %s names no user", m.ID)
		case ev.Type != EventAdded && ev.Type != EventModified && ev.Type != EventDeleted:
			return fmt.Errorf("watch users: event %s has unknown type %q", m.ID, ev.Type)
		}
		return handle(ev)
	})
}
