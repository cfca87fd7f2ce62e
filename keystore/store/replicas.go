package store

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
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
// Redis losing its data (restarted empty, FLUSHALL, restored from a backup) loses the hash too,
// while the replicas still trust their sets of the lost history until their next renewal
// notices. So every Store remembers the leases it read (leaseBook): a lease it saw that is gone
// from the hash before its end (plus leaseRetention), or back at an earlier end, was lost with
// the data, and creates then wait one lease from that moment, by which time every lease from before the loss has run out. A lease is never deleted
// before then: released ones are marked so, and stay, as do the ones that ran out. keystore
// reads the hash every few seconds (WatchLeases) so that its memory is fresh when a loss comes.
//
// What this rests on: Redis's clock and the replicas' clocks run at the same rate (the margin,
// a tenth of the lease, covers drift, not a clock stepped forward on the Redis host, which ends
// leases early); a failover does not lose a replica's last renewal (extauthz does not wait for
// replicas' acknowledgements: its renewal then stands as the one before, which still holds for
// three quarters of a lease after it); and a Store that saw the leases within leaseRetention
// notices a loss. Where that fails, a replica may refuse a key created in that moment until its
// next renewal: a refusal, never an allow.
//
//	keygate:{accesskeys}:replicas  hash  replica id -> "<applied> <newest read> <lease end, Redis ms> <lease ms>[ released]"
const replicasKey = prefix + "replicas"

// leaseRetention is how long a lease stays in the hash after its end (released or run out), so
// that a Store that read the hash within it tells a lease that ended from one Redis lost.
const leaseRetention = 10 * time.Second

// MaxLease is the longest lease a replica may hold (extauthz's --digest-lease allows up to it). A
// field of the hash that claims a longer lease, or an end further away than its length, is no
// replica's: the store drops it, so that nobody who can write Redis makes every create wait.
const MaxLease = 10 * time.Second

// DefaultReplicaWait bounds how long a create waits for the extauthz replicas that hold a lease:
// longer than extauthz's lease (--digest-lease, 1s by default), so that a replica that stopped
// without releasing its lease delays creates by at most its lease.
const DefaultReplicaWait = 2 * time.Second

// Outcomes of a create's wait for the replicas (Options.ObserveReplicaWait).
const (
	WaitNone    = "none"    // no replica held a lease
	WaitApplied = "applied" // every replica holding a lease applied the create or renewed after it
	WaitLapsed  = "lapsed"  // as applied, once the lease of a replica that stopped renewing ran out
	WaitLost    = "lost"    // Redis lost the leases (and its data): the create waited for the leases from before to run out
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
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (rv or '0') .. ' ' .. string.format('%.0f', now + tonumber(ARGV[3])) .. ' ' .. ARGV[3])
return {rv, redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)}
`)

// releaseScript marks replica ARGV[1]'s lease released, keeping it until it would have ended
// (and leaseRetention after), so that no Store takes it for one Redis lost.
var releaseScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and not string.find(v, 'released') then redis.call('HSET', KEYS[1], ARGV[1], v .. ' released') end
return 1
`)

// leasesScript returns Redis's time (ms) and every lease, as a flat list of id and value, after
// deleting the ones that ended more than ARGV[1] ms ago and any field that is not a lease: one
// longer than ARGV[2] ms, or ending further from now than its length (what Renew writes never is,
// unless Redis's clock stepped back; the store then takes the lease for lost, see leaseBook).
var leasesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {tostring(now)}
for i = 1, #all, 2 do
  local e, l = string.match(all[i + 1], '^%d+ %d+ (%d+) (%d+)')
  local ends, len = tonumber(e), tonumber(l)
  if not ends or len > tonumber(ARGV[2]) or ends - now > len or ends + tonumber(ARGV[1]) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
`)

// Renew records that extauthz replica id applied every change up to applied and holds a lease
// for lease from now, and returns the store's newest change as read by the same script (Head).
// The caller must stop refusing from memory before calling it (see the comment on replicasKey).
func (s *Store) Renew(ctx context.Context, id string, applied uint64, lease time.Duration) (Head, error) {
	if id == "" || lease <= 0 || lease > MaxLease {
		return Head{}, fmt.Errorf("renew a lease: need a replica id and a lease of at most %s, got %q and %s", MaxLease, id, lease)
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

// Release marks replica id's lease released, so that creates stop waiting for it (a stopping
// replica, which no longer refuses from memory).
func (s *Store) Release(ctx context.Context, id string) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{replicasKey}, id).Err(); err != nil {
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
// after it, or its lease ran out, and any lease Redis lost ran out, at most Options.ReplicaWait;
// it reports the outcome to Options.ObserveReplicaWait. The key is stored whatever the outcome: a
// create is not undone because a replica is slow, which would only make the client retry into
// a taken name.
func (s *Store) awaitReplicas(ctx context.Context, version string) {
	if s.opts.ReplicaWait < 0 {
		return
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return // stored() made it from an integer
	}
	start := time.Now()
	outcome := s.await(ctx, v, start.Add(s.opts.ReplicaWait))
	if s.opts.ObserveReplicaWait != nil {
		s.opts.ObserveReplicaWait(outcome, time.Since(start))
	}
}

// awaitPolls are the pauses between reads of the leases: a replica applies a create and renews
// within a millisecond or two when it is well.
var awaitPolls = []time.Duration{200 * time.Microsecond, 300 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}

func (s *Store) await(ctx context.Context, version uint64, deadline time.Time) string {
	// The create's own context may end (its client went away) while the key stands: the wait
	// goes on, bounded by deadline, so that an acknowledgement never outruns the replicas.
	ctx = context.WithoutCancel(ctx)
	var held, lapsed, lost bool
	waitedFor := map[string]bool{}
	for i := 0; ; i++ {
		outcome := WaitError
		leases, lostUntil, err := s.readLeases(ctx)
		if err == nil {
			waiting := false
			for id, l := range leases {
				switch {
				case l.binds() && l.applied < version && l.newest < version:
					waiting, waitedFor[id] = true, true
				case waitedFor[id] && !l.holds:
					lapsed = true
				}
				held = held || l.binds()
			}
			losing := time.Now().Before(lostUntil)
			lost = lost || losing
			switch {
			case waiting || losing:
				outcome = WaitTimeout
			case lost:
				return WaitLost
			case lapsed:
				return WaitLapsed
			case held:
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

// lease is one replica's lease as the hash holds it.
type lease struct {
	applied, newest uint64
	holds           bool // its end is still to come, by Redis's clock
	released        bool
	end             time.Time // by this process's clock
	length          time.Duration
}

// binds reports whether creates wait for the replica holding l: its lease holds and it did not
// release it.
func (l lease) binds() bool { return l.holds && !l.released }

// readLeases reads the leases, notes them in the book, and returns them with the time until
// which creates must wait for leases Redis lost.
func (s *Store) readLeases(ctx context.Context) (map[string]lease, time.Time, error) {
	res, err := leasesScript.Run(ctx, s.rdb, []string{replicasKey}, leaseRetention.Milliseconds(), MaxLease.Milliseconds()).StringSlice()
	local := time.Now()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the leases of the extauthz replicas: %w", err)
	}
	if len(res)%2 != 1 {
		return nil, time.Time{}, fmt.Errorf("read the leases of the extauthz replicas: unexpected reply %q", res)
	}
	now, err := strconv.ParseInt(res[0], 10, 64)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the leases of the extauthz replicas: Redis's time %q: %w", res[0], err)
	}
	leases := make(map[string]lease, len(res)/2)
	for i := 1; i < len(res); i += 2 {
		if l, ok := parseLease(res[i+1], now, local); ok {
			leases[res[i]] = l
		}
	}
	return leases, s.book.note(leases, local), nil
}

// parseLease reads a lease's value; now is Redis's time (ms) when local was this process's.
func parseLease(v string, now int64, local time.Time) (lease, bool) {
	f := strings.Fields(v)
	if len(f) < 4 {
		return lease{}, false
	}
	var n [4]uint64
	for i := range n {
		var err error
		if n[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return lease{}, false
		}
	}
	return lease{
		applied: n[0], newest: n[1],
		holds:    int64(n[2]) > now,
		released: len(f) > 4 && f[4] == "released",
		end:      local.Add(time.Duration(int64(n[2])-now) * time.Millisecond),
		length:   time.Duration(n[3]) * time.Millisecond,
	}, true
}

// leaseBook remembers the leases a Store read, to tell when Redis lost them.
type leaseBook struct {
	mu        sync.Mutex
	seen      map[string]lease
	lostUntil time.Time
}

// note records the leases read at local, and returns until when creates must wait for leases
// that Redis lost: a lease seen before is gone before leaseRetention after its end, or back at
// an earlier end, only if Redis lost data, and the replica holding it may trust its set until
// one lease from now.
func (b *leaseBook) note(leases map[string]lease, local time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]lease{}
	}
	for id, l := range b.seen {
		now, ok := leases[id]
		switch {
		case ok && !l.released && now.end.Before(l.end.Add(-l.length/8)):
			// The lease went back to an earlier renewal: Redis was restored from a backup, or
			// failed over to a replica that lagged. (An eighth of the lease is the margin for
			// this process's view of the ends, well within the quarter between renewals.)
			b.lostUntil = later(b.lostUntil, local.Add(l.length))
		case ok:
		case !l.released && local.Before(l.end.Add(leaseRetention/2)):
			// Gone before its time: Redis lost it. Half the retention is the margin for this
			// process's view of the end.
			b.lostUntil = later(b.lostUntil, local.Add(l.length))
			delete(b.seen, id)
		default:
			delete(b.seen, id)
		}
	}
	maps.Copy(b.seen, leases)
	return b.lostUntil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// WatchLeases reads the leases every interval until ctx ends, so that a create soon after Redis
// lost its data knows which leases were lost even if no create read them lately.
func (s *Store) WatchLeases(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _, _ = s.readLeases(ctx) // a failed read is tried again at the next tick
		}
	}
}
