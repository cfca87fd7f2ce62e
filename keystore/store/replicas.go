package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replicas of extauthz that refuse unknown keys from memory hold leases here, so that a create
// is acknowledged only once every such replica would let the new key in.
//
// An extauthz replica knows every stored key's digest (extauthz/keycache) and refuses a digest
// outside that set. Without a lease it must first read the store's newest change, one round trip
// per batch of unknown keys, to be sure no key was created that it has not applied yet. With a
// lease, it renews (Renew) every fraction of the lease, and at once after applying a create: the
// renewal records the version it applied and reads the store's newest change in the same script.
// The replica refuses from memory without a read only while
//   - the lease it last renewed has not run out by its own clock (measured from before the
//     renewal was sent, and ended early by a margin), and
//   - it has applied that renewal's newest change (that very entry, not only its version).
//
// It stops refusing so before each renewal is sent, until the reply is in.
//
// Creating a key (CreateWithinQuota) waits, after the key is stored at version V, until every
// lease in the hash either ran out (by Redis's clock), or records a replica that applied V, or
// was renewed after V was stored (its renewal read a newest change of V or later, which that
// replica must apply before it refuses from memory again). The wait is bounded by
// Options.ReplicaWait, which exceeds any lease: a lease renewed before V runs out within one
// lease of V, and one renewed after V is bound as above. So a key acknowledged as created works
// at once on every replica, as when every unknown key was read from Redis.
//
// What this rests on: Redis's clock and the replicas' clocks run at the same rate (the margin,
// a tenth of the lease, covers drift, not a clock stepped forward on the Redis host, which ends
// leases early), and a failover does not lose a replica's last renewal (extauthz does not wait
// for replicas' acknowledgements: its renewal then stands as the one before, which still holds
// for the three quarters of a lease after it). Where that fails, a replica may refuse a key
// created in that moment until its next renewal: a refusal, never an allow.
//
//	keygate:{accesskeys}:replicas  hash  replica id -> "<applied> <newest read> <lease end, Redis ms>"
const replicasKey = prefix + "replicas"

// DefaultReplicaWait bounds how long a create waits for the extauthz replicas that hold a lease:
// longer than extauthz's lease (--digest-lease, 1s by default), so that a replica that stopped
// without releasing its lease delays creates by at most its lease.
const DefaultReplicaWait = 2 * time.Second

// Outcomes of a create's wait for the replicas (Options.ObserveReplicaWait).
const (
	WaitNone    = "none"    // no replica held a lease
	WaitApplied = "applied" // every replica holding a lease applied the create or renewed after it
	WaitLapsed  = "lapsed"  // as applied, once the lease of a replica that stopped renewing ran out
	WaitTimeout = "timeout" // ReplicaWait passed first: a replica may refuse the key until it catches up
	WaitError   = "error"   // the leases could not be read until ReplicaWait passed
)

// renewScript records that replica ARGV[1] applied every change up to ARGV[2] and holds a lease
// for ARGV[3] ms from now by Redis's clock, and returns the newest change: the counter (false
// when unset) and the log's newest entry. One script, so that it is one write for Options.Acks
// and the newest change read is the one recorded.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rv = redis.call('GET', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (rv or '0') .. ' ' .. string.format('%.0f', now + tonumber(ARGV[3])))
return {rv, redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)}
`)

// awaitScript counts the leases that still hold and, of those, the ones that neither applied
// version ARGV[1] nor were renewed after it, and deletes the leases that ran out (and any field
// that is not a lease), which it counts too.
var awaitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local held, waiting, lapsed = 0, 0, 0
for i = 1, #all, 2 do
  local applied, newest, ends = string.match(all[i + 1], '^(%d+) (%d+) (%d+)$')
  if not ends or tonumber(ends) <= now then
    redis.call('HDEL', KEYS[1], all[i])
    lapsed = lapsed + 1
  else
    held = held + 1
    if tonumber(applied) < v and tonumber(newest) < v then waiting = waiting + 1 end
  end
end
return {held, waiting, lapsed}
`)

// Renew records that extauthz replica id applied every change up to applied and holds a lease
// for lease from now, and returns the store's newest change as read by the same script (Head).
// The caller must stop refusing from memory before calling it (see the comment on replicasKey).
func (s *Store) Renew(ctx context.Context, id string, applied uint64, lease time.Duration) (Head, error) {
	if id == "" || lease <= 0 {
		return Head{}, fmt.Errorf("renew a lease: need a replica id and a positive lease, got %q and %s", id, lease)
	}
	res, err := s.write(ctx, renewScript, []string{replicasKey, rvKey, eventsKey}, id, applied, lease.Milliseconds())
	if err != nil {
		return Head{}, fmt.Errorf("renew the lease of extauthz replica %s: %w", id, err)
	}
	cur, newest, err := renewReply(res)
	if err != nil {
		return Head{}, fmt.Errorf("renew the lease of extauthz replica %s: %w", id, err)
	}
	return s.changes().ParseHead(cur, newest)
}

// Release drops replica id's lease, so that creates stop waiting for it (a stopping replica,
// which no longer refuses from memory).
func (s *Store) Release(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, replicasKey, id).Err(); err != nil {
		return fmt.Errorf("release the lease of extauthz replica %s: %w", id, err)
	}
	return nil
}

// renewReply reads renewScript's reply: the counter ("" when unset) and at most one entry.
func renewReply(res any) (string, []redis.XMessage, error) {
	bad := fmt.Errorf("unexpected reply %v", res)
	parts, ok := res.([]any)
	if !ok || len(parts) != 2 {
		return "", nil, bad
	}
	cur, _ := parts[0].(string) // nil when the counter is unset
	entries, ok := parts[1].([]any)
	if !ok {
		return "", nil, bad
	}
	var msgs []redis.XMessage
	for _, e := range entries {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return "", nil, bad
		}
		id, ok := pair[0].(string)
		fields, ok2 := pair[1].([]any)
		if !ok || !ok2 || len(fields)%2 != 0 {
			return "", nil, bad
		}
		m := redis.XMessage{ID: id, Values: make(map[string]any, len(fields)/2)}
		for i := 0; i < len(fields); i += 2 {
			k, ok := fields[i].(string)
			if !ok {
				return "", nil, bad
			}
			m.Values[k] = fields[i+1]
		}
		msgs = append(msgs, m)
	}
	return cur, msgs, nil
}

// awaitReplicas waits until every extauthz replica holding a lease applied version or renewed
// after it, or its lease ran out, at most Options.ReplicaWait; it reports the outcome to
// Options.ObserveReplicaWait. The key is stored whatever the outcome: a create is not undone
// because a replica is slow, which would only make the client retry into a taken name.
func (s *Store) awaitReplicas(ctx context.Context, version string) {
	if s.opts.ReplicaWait < 0 {
		return
	}
	start := time.Now()
	outcome := s.await(ctx, version, start.Add(s.opts.ReplicaWait))
	if s.opts.ObserveReplicaWait != nil {
		s.opts.ObserveReplicaWait(outcome, time.Since(start))
	}
}

// awaitPolls are the pauses between reads of the leases: a replica applies a create and renews
// within a millisecond or two when it is well.
var awaitPolls = []time.Duration{200 * time.Microsecond, 300 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}

func (s *Store) await(ctx context.Context, version string, deadline time.Time) string {
	// The create's own context may end (its client went away) while the key stands: the wait
	// goes on, bounded by deadline, so that an acknowledgement never outruns the replicas.
	ctx = context.WithoutCancel(ctx)
	lapsed := false
	for i := 0; ; i++ {
		outcome := WaitError
		res, err := awaitScript.Run(ctx, s.rdb, []string{replicasKey}, version).Int64Slice()
		if err == nil && len(res) == 3 {
			lapsed = lapsed || res[2] > 0
			switch {
			case res[1] > 0:
				outcome = WaitTimeout
			case lapsed:
				return WaitLapsed
			case res[0] > 0:
				return WaitApplied
			default:
				return WaitNone
			}
		}
		pause := awaitPolls[min(i, len(awaitPolls)-1)]
		if time.Until(deadline) < pause {
			return outcome
		}
		time.Sleep(pause)
	}
}
