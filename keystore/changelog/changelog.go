// Package changelog is a Redis stream of changes with contiguous versions, which both of
// keystore's stores (access keys, users) append to and which every extauthz replica follows to
// drop what it cached. Versions come from one counter, and entry IDs are "<version>-0", so a
// follower detects a lost entry exactly: the next ID it reads is not its last plus one.
//
// The counter and the stream must share a hash tag (e.g. keygate:{users}:rv and
// keygate:{users}:events), so that appending is one script on Redis Cluster too.
package changelog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrExpired: the entries after the requested version are no longer kept (the stream is
// trimmed), or the log went backwards (Redis lost data). The follower reads everything again
// and follows from the current version, as Kubernetes clients do on 410 Gone.
var ErrExpired = errors.New("resourceVersion is too old")

// ErrTooNew: the requested version has not been handed out yet.
var ErrTooNew = errors.New("resourceVersion is newer than the store's")

// Block is how long one XREAD waits for entries, so that a cancelled Watch ends promptly and
// a Redis that lost its data is noticed within this time.
const Block = 2 * time.Second

// Log is one change stream: its counter and its stream, and what it holds (for messages).
type Log struct {
	RDB redis.UniversalClient
	// Version is the counter's Redis key, Events the stream's; they share a hash tag.
	Version, Events string
	// What names the changed things in errors, e.g. "access keys".
	What string
}

// appendScript appends one entry to a log. A store that changes something and logs it in one
// script has these lines in its own (keystore/store); others call Append.
// KEYS: version, events. ARGV: history, then field/value pairs. Returns the new version.
var appendScript = redis.NewScript(`
local rv = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], rv .. '-0', 'at', ` + LuaAt + `, unpack(ARGV, 2))
return rv
`)

// LuaAt is a Lua expression for a script's XADD: Redis's own clock in Unix microseconds, the
// value of every entry's "at" field. One clock (Redis's) for every writer, so that a follower's
// lag (At) does not depend on which keystore replica wrote. Redis 7 replicates a script's
// effects, so reading TIME in a script is allowed.
const LuaAt = `(function(t) return t[1] .. string.format('%06d', t[2]) end)(redis.call('TIME'))`

// At is when the entry was appended, by Redis's clock; zero for entries written before the
// "at" field existed.
func At(m redis.XMessage) time.Time {
	us, err := strconv.ParseInt(Field(m, "at"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// Append adds an entry with the given field/value pairs, keeping about history entries.
func (l Log) Append(ctx context.Context, history int64, fields ...string) (uint64, error) {
	return l.AppendOn(ctx, l.RDB, history, fields...)
}

// AppendOn is Append on c: the connection (a redis.Conn or redis.Tx) of the write the entry
// tells of, so that a WAIT on it after covers both.
func (l Log) AppendOn(ctx context.Context, c redis.Scripter, history int64, fields ...string) (uint64, error) {
	args := make([]any, 0, len(fields)+1)
	args = append(args, history)
	for _, f := range fields {
		args = append(args, f)
	}
	rv, err := appendScript.Run(ctx, c, []string{l.Version, l.Events}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("%s: append change: %w", l.What, err)
	}
	return uint64(rv), nil
}

// Current is the last version handed out ("0" before the first change).
func (l Log) Current(ctx context.Context) (string, error) {
	rv, err := l.RDB.Get(ctx, l.Version).Result()
	if errors.Is(err, redis.Nil) {
		return "0", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: read resourceVersion: %w", l.What, err)
	}
	return rv, nil
}

// Head is a log's newest entry: what a follower compares with the entry it applied last, to
// tell "the store is at the change I applied" from "the store has another change under that
// version" (Redis lost data, then took as many new changes).
type Head struct {
	// Version is the last version handed out (0 before the first change).
	Version uint64
	// Entry is the Fingerprint of the log's entry of Version; "" when the log does not hold
	// it (version 0, or a stream emptied or deleted apart from its counter).
	Entry string
}

// Head reads the counter and the newest entry in one transaction: a GET and an XREVRANGE of
// one entry, both O(1).
func (l Log) Head(ctx context.Context) (Head, error) {
	var cur *redis.StringCmd
	var newest *redis.XMessageSliceCmd
	_, err := l.RDB.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cur = p.Get(ctx, l.Version)
		newest = p.XRevRangeN(ctx, l.Events, "+", "-", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Head{}, fmt.Errorf("%s: read newest change: %w", l.What, err)
	}
	return l.ParseHead(cur.Val(), newest.Val())
}

// ParseHead is the Head of a read of the counter (cur: "" when unset) and of the log's newest
// entry (newest: at most one), made together: by Head, or by a script that also writes.
func (l Log) ParseHead(cur string, newest []redis.XMessage) (Head, error) {
	var h Head
	if cur != "" {
		var err error
		if h.Version, err = strconv.ParseUint(cur, 10, 64); err != nil {
			return Head{}, fmt.Errorf("%s: resourceVersion %q: %w", l.What, cur, err)
		}
	}
	if h.Version > 0 && len(newest) == 1 && Version(newest[0].ID) == h.Version {
		h.Entry = Fingerprint(newest[0])
	}
	return h, nil
}

// Fingerprint identifies an entry by its ID and every field, as sameEntry compares them: two
// entries have the same fingerprint only if they are the same entry (a SHA-256 of them, hex,
// cut to 128 bits). Entries of two histories under one version differ at least by "at",
// Redis's time of the change in microseconds.
func Fingerprint(m redis.XMessage) string {
	h := sha256.New()
	write := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(m.ID)
	for _, k := range slices.Sorted(maps.Keys(m.Values)) {
		write(k)
		write(fmt.Sprint(m.Values[k]))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Watch calls handle with every entry after version from, in order, until ctx ends (it then
// returns nil), handle returns an error (returned), Redis fails, or the entries needed are gone
// (ErrExpired).
//
// It also returns ErrExpired when the log is no longer the one it was following: Redis lost
// its data (restarted empty, or failed over to a replica that lagged). go-redis reconnects by
// itself, so such a Redis looks like a quiet stream, or, once it has taken as many new changes
// as were lost, like the same stream going on. Watch therefore checks, before handling each
// batch and after each quiet block, that the last entry it handled is still there, unchanged
// (sameHistory).
func (l Log) Watch(ctx context.Context, from uint64, handle func(version uint64, m redis.XMessage) error) error {
	seen, err := l.checkWatchFrom(ctx, from)
	if err != nil {
		return err
	}
	last := from
	for {
		streams, err := l.RDB.XRead(ctx, &redis.XReadArgs{
			Streams: []string{l.Events, strconv.FormatUint(last, 10) + "-0"},
			Count:   500,
			Block:   Block,
		}).Result()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("watch %s: %w", l.What, err)
		}
		// Nothing new within Block, or entries that follow last by number: either way, only
		// if the log still holds last as it was handled.
		if err := l.sameHistory(ctx, last, seen); err != nil || ctx.Err() != nil {
			return err
		}
		if last, seen, err = handleEntries(streams, last, seen, handle); err != nil {
			return err
		}
	}
}

// checkWatchFrom refuses a watch from a version not handed out yet (ErrTooNew) or one whose
// next entries are no longer kept (ErrExpired). It returns the entry of version from, when
// the log holds it, for sameHistory.
func (l Log) checkWatchFrom(ctx context.Context, from uint64) (*redis.XMessage, error) {
	var cur *redis.StringCmd
	var first, at *redis.XMessageSliceCmd
	_, err := l.RDB.TxPipelined(ctx, func(p redis.Pipeliner) error {
		cur = p.Get(ctx, l.Version)
		first = p.XRangeN(ctx, l.Events, "-", "+", 1)
		id := strconv.FormatUint(from, 10) + "-0"
		at = p.XRange(ctx, l.Events, id, id)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("watch %s: %w", l.What, err)
	}
	current, _ := strconv.ParseUint(cur.Val(), 10, 64)
	if from > current {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooNew, from, current)
	}
	if from < current {
		if msgs := first.Val(); len(msgs) == 0 || Version(msgs[0].ID) > from+1 {
			return nil, fmt.Errorf("%w: %d", ErrExpired, from)
		}
	}
	if msgs := at.Val(); from > 0 && len(msgs) == 1 {
		return &msgs[0], nil
	}
	return nil, nil
}

// sameHistory returns ErrExpired unless the log still holds last as seen (the entry Watch
// handled last): Redis that lost its data has no such entry, or another one under the same
// version (its "at", Redis's time of the change, at least differs). When seen is nil (a watch
// from 0, or from a version whose entry was not kept) it can only check that the log's version
// is not below last. It returns nil when ctx ends.
//
// An entry the log trimmed also fails the check: that takes more than the log's history of
// changes after it, while this follower has not handled them, and the follower then reads
// everything again, as for trimmed entries it has not handled.
func (l Log) sameHistory(ctx context.Context, last uint64, seen *redis.XMessage) error {
	if seen == nil {
		return l.checkNotBehind(ctx, last)
	}
	msgs, err := l.RDB.XRange(ctx, l.Events, seen.ID, seen.ID).Result()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch %s: %w", l.What, err)
	}
	if len(msgs) != 1 || !sameEntry(msgs[0], *seen) {
		return fmt.Errorf("%w: the %s store no longer holds resourceVersion %d as it was followed (Redis lost data?)", ErrExpired, l.What, last)
	}
	return nil
}

// sameEntry reports whether a and b are the same entry: ID and every field.
func sameEntry(a, b redis.XMessage) bool {
	if a.ID != b.ID || len(a.Values) != len(b.Values) {
		return false
	}
	for k, v := range a.Values {
		w, ok := b.Values[k]
		if !ok || v != w {
			return false
		}
	}
	return true
}

// checkNotBehind returns ErrExpired when the log's version is below last, already seen.
// It returns nil when ctx ends.
func (l Log) checkNotBehind(ctx context.Context, last uint64) error {
	cur, err := l.RDB.Get(ctx, l.Version).Uint64()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("watch %s: %w", l.What, err)
	}
	if cur < last {
		return fmt.Errorf("%w: the %s store is at resourceVersion %d, behind %d already seen (Redis lost data?)", ErrExpired, l.What, cur, last)
	}
	return nil
}

// handleEntries passes the entries XREAD returned after last to handle and returns the last
// version handled and its entry (seen, if none was).
func handleEntries(streams []redis.XStream, last uint64, seen *redis.XMessage, handle func(uint64, redis.XMessage) error) (uint64, *redis.XMessage, error) {
	for _, st := range streams {
		for i, m := range st.Messages {
			rv := Version(m.ID)
			if rv != last+1 {
				// Trimmed while we were behind: the entries between are lost to us.
				return last, seen, fmt.Errorf("%w: %d (next kept event is %d)", ErrExpired, last, rv)
			}
			last, seen = rv, &st.Messages[i]
			if err := handle(rv, m); err != nil {
				return last, seen, err
			}
		}
	}
	return last, seen, nil
}

// Version is the version of a stream entry ID "<version>-0".
func Version(id string) uint64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(ms, 10, 64)
	return n
}

// Field is the string value of field k of m ("" when absent).
func Field(m redis.XMessage, k string) string {
	s, _ := m.Values[k].(string)
	return s
}
