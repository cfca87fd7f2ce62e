// Package teams keeps the platform's teams in Redis: what a team is (display name,
// description, groups, and the object metadata the management API keeps), not who is in it.
// Membership stays on each user's record (keystore/users, User.Teams), the one source the edge
// reads to decide who manages a team's keys; the management API reads a team's members from
// the users and writes them through to the users.
//
// Layout, all under one hash tag so that every change is one script on Redis Cluster too:
//
//	keygate:{teams}:records  hash    name -> JSON Team
//	keygate:{teams}:rvs      hash    name -> the version of the team's last change
//	keygate:{teams}:rv       string  the last version handed out
//	keygate:{teams}:events   stream  one entry per change: type, name (keystore/changelog)
//
// A write checks the expected version, writes the record, takes the next version and appends
// the change in one script, so versions are contiguous and a team's version is the version of
// its last change (the management API's resourceVersion, and a watch's).
package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/keygate-dev/keygate/internal/redisack"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// Errors a caller can test for with errors.Is.
var (
	ErrNotFound      = errors.New("team not found")
	ErrAlreadyExists = errors.New("team already exists")
	ErrConflict      = errors.New("team changed meanwhile")
	ErrExpired       = changelog.ErrExpired
	ErrTooNew        = changelog.ErrTooNew
)

// Team is a team's record. Its members are not here: see the package comment.
type Team struct {
	Name              string            `json:"name"`
	UID               string            `json:"uid"`
	CreationTimestamp time.Time         `json:"creationTimestamp"`
	DisplayName       string            `json:"displayName,omitempty"`
	Description       string            `json:"description,omitempty"`
	Groups            []string          `json:"groups,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ManagedFields     json.RawMessage   `json:"managedFields,omitempty"`
	// Version is the version of the team's last change; the store sets it.
	Version string `json:"-"`
}

// Redis keys.
const (
	recordsKey = "keygate:{teams}:records"
	rvsKey     = "keygate:{teams}:rvs"
	versionKey = "keygate:{teams}:rv"
	eventsKey  = "keygate:{teams}:events"
)

// history is about how many change entries the stream keeps.
const history = 10000

// Store is a Redis-backed store of teams.
type Store struct {
	rdb  redis.UniversalClient
	acks redisack.Acks
}

// New returns a store on rdb (standalone, Sentinel or Cluster).
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// NewWithAcks returns a store on rdb whose changes wait for acks before they are reported done.
func NewWithAcks(rdb redis.UniversalClient, acks redisack.Acks) *Store {
	return &Store{rdb: rdb, acks: acks}
}

func (s *Store) changes() changelog.Log {
	return changelog.Log{RDB: s.rdb, Version: versionKey, Events: eventsKey, What: "teams"}
}

// writeScript creates (ARGV[2] "create"), updates ("update") or deletes ("delete") team
// ARGV[1]. ARGV[3] is the expected version ("" for any), ARGV[4] the new JSON, ARGV[5] the
// history, ARGV[6] the event type. It returns {version, previous JSON}.
var writeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[2] == 'create' then
  if cur then return redis.error_reply('EXISTS') end
else
  if not cur then return redis.error_reply('NOTFOUND') end
  if ARGV[3] ~= '' and ARGV[3] ~= cur then return redis.error_reply('CONFLICT') end
end
local prev = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local rv = redis.call('INCR', KEYS[3])
if ARGV[2] == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[1], rv)
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', ARGV[6], 'name', ARGV[1])
return {rv, prev}
`)

// write runs writeScript and returns the new version and the previous record.
func (s *Store) write(ctx context.Context, op, name, expect string, t *Team, event string) (string, *Team, error) {
	data := ""
	if t != nil {
		b, err := json.Marshal(t)
		if err != nil {
			return "", nil, err
		}
		data = string(b)
	}
	var res []any
	err := s.acks.Do(ctx, s.rdb, recordsKey, func(c redis.Cmdable) error {
		var err error
		res, err = writeScript.Run(ctx, c, []string{recordsKey, rvsKey, versionKey, eventsKey}, name, op, expect, data, history, event).Slice()
		return err
	})
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "EXISTS"):
			return "", nil, fmt.Errorf("%w: %q", ErrAlreadyExists, name)
		case strings.Contains(err.Error(), "NOTFOUND"):
			return "", nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		case strings.Contains(err.Error(), "CONFLICT"):
			return "", nil, fmt.Errorf("%w: %q", ErrConflict, name)
		}
		return "", nil, fmt.Errorf("write team %s: %w", name, err)
	}
	rv := fmt.Sprint(res[0])
	var prev *Team
	if p, _ := res[1].(string); p != "" {
		prev = &Team{}
		if err := json.Unmarshal([]byte(p), prev); err != nil {
			return rv, nil, fmt.Errorf("team %s: corrupt record: %w", name, err)
		}
	}
	return rv, prev, nil
}

// Create stores a new team with a new UID and, unless given, the creation time.
func (s *Store) Create(ctx context.Context, t Team) (*Team, error) {
	t.UID = string(uuid.NewUUID())
	if t.CreationTimestamp.IsZero() {
		t.CreationTimestamp = time.Now()
	}
	t.CreationTimestamp = t.CreationTimestamp.UTC().Truncate(time.Second)
	rv, _, err := s.write(ctx, "create", t.Name, "", &t, EventAdded)
	if err != nil {
		return nil, err
	}
	t.Version = rv
	return &t, nil
}

// Update replaces the team t.Name if its version is still expect ("" for any). The UID and
// creation time stay the stored ones.
func (s *Store) Update(ctx context.Context, t Team, expect string) (*Team, error) {
	cur, err := s.Get(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	if expect != "" && expect != cur.Version {
		return nil, fmt.Errorf("%w: %q", ErrConflict, t.Name)
	}
	t.UID, t.CreationTimestamp = cur.UID, cur.CreationTimestamp
	// The script checks the version again: a write between Get and here is a conflict.
	rv, _, err := s.write(ctx, "update", t.Name, cur.Version, &t, EventModified)
	if err != nil {
		return nil, err
	}
	t.Version = rv
	return &t, nil
}

// Delete removes the team name if its version is still expect ("" for any) and returns it.
func (s *Store) Delete(ctx context.Context, name, expect string) (*Team, error) {
	_, prev, err := s.write(ctx, "delete", name, expect, nil, EventDeleted)
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// Get returns the team named name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*Team, error) {
	var rec, rv *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rec, rv = p.HGet(ctx, recordsKey, name), p.HGet(ctx, rvsKey, name)
		return nil
	})
	if errors.Is(err, redis.Nil) || (err == nil && rec.Val() == "") {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get team %s: %w", name, err)
	}
	return decode(name, rec.Val(), rv.Val())
}

func decode(name, data, rv string) (*Team, error) {
	var t Team
	if err := json.Unmarshal([]byte(data), &t); err != nil || t.Name != name {
		return nil, fmt.Errorf("team %s: corrupt record in %s", name, recordsKey)
	}
	t.Version = rv
	return &t, nil
}

// ListWithVersion returns every team, sorted by name, and the version they are at (one
// transaction, so Watch from it misses nothing and repeats nothing).
func (s *Store) ListWithVersion(ctx context.Context) ([]*Team, string, error) {
	var recs, rvs *redis.MapStringStringCmd
	var cur *redis.StringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		recs, rvs, cur = p.HGetAll(ctx, recordsKey), p.HGetAll(ctx, rvsKey), p.Get(ctx, versionKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("list teams: %w", err)
	}
	out := make([]*Team, 0, len(recs.Val()))
	for name, data := range recs.Val() {
		t, err := decode(name, data, rvs.Val()[name])
		if err != nil {
			return nil, "", err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Team) int { return strings.Compare(a.Name, b.Name) })
	rv := cur.Val()
	if rv == "" {
		rv = "0"
	}
	return out, rv, nil
}

// Types of Event, as the user store's.
const (
	EventAdded    = "ADDED"
	EventModified = "MODIFIED"
	EventDeleted  = "DELETED"
)

// Event is one change to a team; it names the team only.
type Event struct {
	Type, Name string
	Version    uint64
}

// Watch calls handle with every change after version, in order, until ctx ends (nil), handle
// fails, Redis fails, or the changes needed are gone (ErrExpired).
func (s *Store) Watch(ctx context.Context, version string, handle func(Event) error) error {
	from, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return fmt.Errorf("watch teams: version %q is not a number", version)
	}
	return s.changes().Watch(ctx, from, func(rv uint64, m redis.XMessage) error {
		return handle(Event{Type: changelog.Field(m, "type"), Name: changelog.Field(m, "name"), Version: rv})
	})
}
