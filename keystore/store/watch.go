package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// ErrExpired: the events after the requested resourceVersion are no longer kept (the stream
// holds about Options.EventHistory of them). The caller lists again and watches from there, as
// Kubernetes clients do on 410 Gone.
var ErrExpired = errors.New("resourceVersion is too old")

// ErrTooNew: the requested resourceVersion has not been handed out yet.
var ErrTooNew = errors.New("resourceVersion is newer than the store's")

// Event is one change to a key.
type Event struct {
	// Type is watch.Added, watch.Modified or watch.Deleted.
	Type watch.EventType
	// Key is the object after the change (before it, for a deletion), with the change's
	// resourceVersion.
	Key *v1.OwnedAccessKey
	// Digest identifies the key material, e.g. to drop the key from a cache.
	Digest string
}

// watchBlock is how long one XREAD waits for events, so that a cancelled watch ends promptly.
const watchBlock = 2 * time.Second

// CurrentVersion is the last resourceVersion handed out ("0" before the first change).
func (s *Store) CurrentVersion(ctx context.Context) (string, error) {
	rv, err := s.rdb.Get(ctx, rvKey).Result()
	if errors.Is(err, redis.Nil) {
		return "0", nil
	}
	if err != nil {
		return "", fmt.Errorf("access keys: read resourceVersion: %w", err)
	}
	return rv, nil
}

// Watch calls handle with every change after resourceVersion, in order, until ctx ends (it then
// returns nil), handle returns an error (returned), Redis fails, or the events needed are gone
// (ErrExpired). Resource versions are contiguous, so a gap is detected exactly.
func (s *Store) Watch(ctx context.Context, resourceVersion string, handle func(Event) error) error {
	from, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: resourceVersion %q is not a number", ErrInvalid, resourceVersion)
	}
	if err := s.checkWatchFrom(ctx, from); err != nil {
		return err
	}
	last := from
	for {
		streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{eventsKey, strconv.FormatUint(last, 10) + "-0"},
			Count:   500,
			Block:   watchBlock,
		}).Result()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, redis.Nil) {
			// Nothing new within watchBlock.
			if err := s.checkNotBehind(ctx, last); err != nil || ctx.Err() != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("watch access keys: %w", err)
		}
		if last, err = handleEvents(streams, last, handle); err != nil {
			return err
		}
	}
}

// checkWatchFrom refuses a watch from a version not handed out yet (ErrTooNew) or one whose
// next events are no longer kept (ErrExpired).
func (s *Store) checkWatchFrom(ctx context.Context, from uint64) error {
	var cur *redis.StringCmd
	var first *redis.XMessageSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cur = p.Get(ctx, rvKey)
		first = p.XRangeN(ctx, eventsKey, "-", "+", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("watch access keys: %w", err)
	}
	current, _ := strconv.ParseUint(cur.Val(), 10, 64)
	if from > current {
		return fmt.Errorf("%w: %d > %d", ErrTooNew, from, current)
	}
	if from < current {
		if msgs := first.Val(); len(msgs) == 0 || eventVersion(msgs[0].ID) > from+1 {
			return fmt.Errorf("%w: %d", ErrExpired, from)
		}
	}
	return nil
}

// checkNotBehind returns ErrExpired when the store's version is below last, already seen.
// go-redis retries a broken connection, so a Redis that restarted without its data (or failed
// over to a replica that lagged) looks like a quiet stream whose next IDs we have already seen.
// It returns nil when ctx ends.
func (s *Store) checkNotBehind(ctx context.Context, last uint64) error {
	cur, err := s.rdb.Get(ctx, rvKey).Uint64()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("watch access keys: %w", err)
	}
	if cur < last {
		return fmt.Errorf("%w: the key store is at resourceVersion %d, behind %d already seen (Redis lost data?)", ErrExpired, cur, last)
	}
	return nil
}

// handleEvents passes the events XREAD returned after last to handle and returns the last
// version handled.
func handleEvents(streams []redis.XStream, last uint64, handle func(Event) error) (uint64, error) {
	for _, st := range streams {
		for _, m := range st.Messages {
			rv := eventVersion(m.ID)
			if rv != last+1 {
				// Trimmed while we were behind: the events between are lost to us.
				return last, fmt.Errorf("%w: %d (next kept event is %d)", ErrExpired, last, rv)
			}
			last = rv
			ev, err := decodeEvent(m)
			if err != nil {
				return last, err
			}
			if err := handle(ev); err != nil {
				return last, err
			}
		}
	}
	return last, nil
}

func eventVersion(id string) uint64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(ms, 10, 64)
	return n
}

func decodeEvent(m redis.XMessage) (Event, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	rv := strconv.FormatUint(eventVersion(m.ID), 10)
	rec, err := decode(str("record"), rv, str("activity"))
	if err != nil {
		return Event{}, fmt.Errorf("watch access keys: event %s: %w", m.ID, err)
	}
	ev := Event{Type: watch.EventType(str("type")), Key: rec.Key, Digest: str("digest")}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted:
		return ev, nil
	}
	return Event{}, fmt.Errorf("watch access keys: event %s has unknown type %q", m.ID, ev.Type)
}
