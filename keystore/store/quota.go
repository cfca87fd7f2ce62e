package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// ErrQuota: the new key would take its owner past their quota.
var ErrQuota = errors.New("access key quota reached")

// Quota bounds how many keys of one kind (say, the live keys of one user that are not login
// keys) may exist at once.
type Quota struct {
	// Max is how many keys Counts selects may exist, the new one included; 0 means no bound.
	Max int
	// Counts selects the keys Max is about. It is given every stored key.
	Counts func(k *v1.OwnedAccessKey) bool
	// EvictOldest makes room by deleting the oldest counted keys (by creation time) in the same
	// step as the create, instead of refusing with ErrQuota.
	EvictOldest bool
}

// PerOwner is the quota of max live keys of k's owner (its user, or its team) and of k's kind:
// login keys (type Login), OIDC refresh tokens (type OIDCRefreshToken) and the others are
// counted apart, since logins and the OIDC provider make keys of their own accord. A key
// expired at now (by its ttl; the edge's --max-ttl is not known here) is of no use to anyone
// and does not count.
func PerOwner(k *v1.OwnedAccessKey, max int, now time.Time) Quota {
	owner, class := accesskey.User(k), quotaClass(k)
	return Quota{Max: max, Counts: func(o *v1.OwnedAccessKey) bool {
		return accesskey.User(o) == owner && quotaClass(o) == class && !accesskey.Expired(o, now, 0)
	}}
}

// quotaClass is which count a key is in: its type for the kinds made of their own accord
// (logins, OIDC refresh tokens), "" for every other key.
func quotaClass(k *v1.OwnedAccessKey) v1.AccessKeyType {
	switch k.Spec.Type {
	case v1.AccessKeyTypeLogin, v1.AccessKeyTypeOIDCRefreshToken:
		return k.Spec.Type
	}
	return ""
}

// maxQuotaAttempts bounds how often CreateWithinQuota counts again because keys changed meanwhile.
const maxQuotaAttempts = 10

// createWithinQuotaScript is createScript, done only if no key changed since the snapshot the
// quota was counted on (the resourceVersion counter is as then), after deleting the keys
// evicted to make room.
// KEYS: records, rvs, names, rv, events, activity. ARGV: name, digest, record JSON, event
// history, the snapshot's resourceVersion, then the names of the keys to delete first.
var createWithinQuotaScript = redis.NewScript(`
if (redis.call('GET', KEYS[4]) or '0') ~= ARGV[5] then return 'stale' end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'name' end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return 'material' end
for i = 6, #ARGV do
  local d = redis.call('HGET', KEYS[3], ARGV[i])
  local data = redis.call('HGET', KEYS[1], d)
  local act = redis.call('HGET', KEYS[6], d) or ''
  local rv = redis.call('INCR', KEYS[4])
  redis.call('HDEL', KEYS[1], d)
  redis.call('HDEL', KEYS[2], d)
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[6], d)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', 'DELETED', 'digest', d, 'record', data, 'activity', act)
end
local rv = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], rv)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], rv .. '-0', 'at', ` + changelog.LuaAt + `, 'type', 'ADDED', 'digest', ARGV[2], 'record', ARGV[3])
return rv
`)

// CreateWithinQuota is CreateObject within q: it refuses with ErrQuota when the keys q counts
// number q.Max already, or with q.EvictOldest deletes the oldest of them to make room, and
// returns the names it deleted.
//
// The count is exact under concurrent creates: it is taken on a snapshot of every key, and the
// create (with its evictions) is stored only if no key changed since, in one script; else the
// count is taken again. So of two creates at the bound, one is refused. The price is a read of
// every key per create, and a retry when any key changes meanwhile: keys number in thousands
// and change seldom (recording activity is not a change).
func (s *Store) CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q Quota) (string, *v1.OwnedAccessKey, []string, error) {
	if q.Max <= 0 {
		plain, obj, err := s.CreateObject(ctx, k)
		return plain, obj, nil, err
	}
	n, err := newKey(k)
	if err != nil {
		return "", nil, nil, err
	}
	for range maxQuotaAttempts {
		all, version, err := s.ListWithVersion(ctx)
		if err != nil {
			return "", nil, nil, err
		}
		evict, err := q.makeRoom(all)
		if err != nil {
			return "", nil, nil, err
		}
		args := append([]any{n.obj.Name, n.digest, n.data, s.opts.EventHistory, version}, toAny(evict)...)
		res, err := s.write(ctx, createWithinQuotaScript, []string{recordsKey, rvsKey, namesKey, rvKey, eventsKey, activityKey}, args...)
		if err != nil {
			return "", nil, nil, fmt.Errorf("create access key %s: %w", n.obj.Name, err)
		}
		if res == "stale" {
			continue // a key changed since the count: count again
		}
		obj, err := n.stored(res)
		if err != nil {
			return "", nil, nil, err
		}
		return n.plain, obj, evict, nil
	}
	return "", nil, nil, fmt.Errorf("%w: create access key %s: keys kept changing while their quota was counted; try again", ErrConflict, n.obj.Name)
}

// makeRoom returns the keys to delete so that one more fits within q (none when it fits), or
// ErrQuota.
func (q Quota) makeRoom(all []*v1.OwnedAccessKey) ([]string, error) {
	var counted []*v1.OwnedAccessKey
	for _, k := range all {
		if q.Counts(k) {
			counted = append(counted, k)
		}
	}
	over := len(counted) - q.Max + 1
	if over <= 0 {
		return nil, nil
	}
	if !q.EvictOldest {
		return nil, fmt.Errorf("%w: %d keys of at most %d exist", ErrQuota, len(counted), q.Max)
	}
	sort.Slice(counted, func(i, j int) bool {
		a, b := counted[i], counted[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		// Creation times are in whole seconds; within one, the resourceVersion tells which was
		// written first (exactly, unless one was changed since).
		ra, _ := strconv.ParseInt(a.ResourceVersion, 10, 64)
		rb, _ := strconv.ParseInt(b.ResourceVersion, 10, 64)
		return ra < rb
	})
	evict := make([]string, over)
	for i := range evict {
		evict[i] = counted[i].Name
	}
	return evict, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
