package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is a token bucket of failed logins: Burst failures in a row, then one more every
// Every; an untouched bucket is full again after Burst*Every.
type Limit struct {
	Burst int
	Every time.Duration
}

// Which limit refused an attempt, for the log.
const (
	limitClient  = "client"
	limitAddress = "address"
	limitUser    = "user"
)

// LimitStore is where failed logins are counted: Redis, shared by every keystore replica, so
// that N replicas behind a balancer allow no more guesses than one.
type LimitStore struct {
	Redis redis.Scripter
	// Prefix begins every key of the buckets; "" is DefaultLimitPrefix. It must hold a hash tag
	// ({...}): one script reads the buckets of an attempt together, so on a Redis Cluster they
	// must share a slot.
	Prefix string
	// Now is the buckets' clock; nil is Redis's own (TIME), the one clock every replica shares.
	Now func() time.Time
}

// DefaultLimitPrefix begins the keys of the failed-login buckets:
//
//	keygate:{loginlimits}:<kind>:<key>  hash  tokens, at (ms), a:<attempt id> -> its deadline (ms)
//
// kind is client (key "<user> <address>"), address or user; AddressLimiter's (single sign-on
// starts) are keygate:{loginlimits}:start:address:<address>.
const DefaultLimitPrefix = "keygate:{loginlimits}:"

// attemptTimeout bounds how long an admitted attempt holds its place: a replica that died in
// the middle of one gives it back after this. Checking a password takes a quarter of a second.
const attemptTimeout = 30 * time.Second

// limiter counts failed logins in token buckets of three kinds: per client, that is per (user
// name, client address) pair; per address, whatever the names; and per user name, whatever the
// address. Successful logins cost nothing.
//
// The client bucket is the tight one: a client that keeps failing for a user is slowed, and
// only that client, so failures from elsewhere never lock the user out. The address bucket
// stops one address spraying many names. The user bucket is a ceiling against guessing one
// user from many addresses; it is set higher and faster than the client bucket (New checks
// that), so that one client alone, failing as fast as it is let, never reaches it: its client
// bucket runs dry first. Only failures from several addresses at once can, and then the user
// is refused from everywhere until they slow down: the price of bounding distributed guessing.
//
// An attempt is admitted only while its buckets have a token left for it after the attempts
// still running: bcrypt takes a quarter of a second, and without counting those, a burst of
// parallel guesses would all pass the check before the first failure was recorded.
//
// The buckets live in Redis (LimitStore), each a hash that expires once it has refilled and
// no attempt of it can still be running: successful logins leave nothing behind, and what an
// attack leaves is bounded by the attempts keystore can check (each costs a bcrypt).
type limiter struct {
	store                 LimitStore
	client, address, user Limit
}

func newLimiter(store LimitStore, client, address, user Limit) *limiter {
	if store.Prefix == "" {
		store.Prefix = DefaultLimitPrefix
	}
	return &limiter{store: store, client: client, address: address, user: user}
}

// bucket is one bucket an attempt counts against.
type bucket struct {
	kind, key string
	limit     Limit
}

// buckets is what an attempt for user (empty: a name that cannot exist, which gets no client
// or user bucket, only its address's) from addr counts against.
func (l *limiter) buckets(user, addr string) []bucket {
	if user == "" {
		return []bucket{{limitAddress, addr, l.address}}
	}
	// User names are DNS labels: no spaces.
	return []bucket{{limitClient, user + " " + addr, l.client}, {limitAddress, addr, l.address}, {limitUser, user, l.user}}
}

// bucketState begins both scripts below, which take the same arguments: KEYS are an attempt's
// buckets; ARGV[1] the time in ms ("": Redis's own), ARGV[2] the attempt's id, ARGV[3] how long
// it may run (ms), ARGV[4] "1" when it failed (releaseScript reads it), then each bucket's burst
// and refill time (ms), in KEYS' order (limits(i)). state(k, ...) reads bucket k's tokens and
// running attempts at now, forgetting the attempts past their deadline.
const bucketState = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local timeout = tonumber(ARGV[3])
local function limits(i) return tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i]) end
local function state(k, burst, every)
  local h = redis.call('HGETALL', k)
  local tokens, at, running = burst, now, 0
  for i = 1, #h, 2 do
    local f, v = h[i], tonumber(h[i + 1])
    if f == 'tokens' then tokens = v
    elseif f == 'at' then at = v
    elseif v > now then running = running + 1
    else redis.call('HDEL', k, f) end
  end
  if now > at then tokens = math.min(burst, tokens + (now - at) / every) end
  return tokens, running
end
`

// admitScript admits the attempt if each bucket has a token beyond its running attempts; else it
// returns how long until every one has (ms) and the first that has none the longest (its index,
// from 1).
var admitScript = redis.NewScript(bucketState + `
local wait, by = 0, 0
for i, k in ipairs(KEYS) do
  local burst, every = limits(i)
  local tokens, running = state(k, burst, every)
  local w = math.ceil((1 - (tokens - running)) * every)
  if w > wait then wait, by = w, i end
end
if wait > 0 then return {wait, by} end
for _, k in ipairs(KEYS) do
  redis.call('HSET', k, 'a:' .. ARGV[2], tostring(now + timeout))
  if redis.call('PTTL', k) < timeout then redis.call('PEXPIRE', k, timeout) end
end
return {0, 0}
`)

// releaseScript ends the attempt, taking a token from each bucket when it failed: the token is
// taken even from an empty bucket (failures that ran together), which pushes the next try
// further out. A bucket left full with nothing running goes; the others expire once they have
// refilled and no attempt can run.
var releaseScript = redis.NewScript(bucketState + `
for i, k in ipairs(KEYS) do
  local burst, every = limits(i)
  redis.call('HDEL', k, 'a:' .. ARGV[2])
  local tokens, running = state(k, burst, every)
  if ARGV[4] == '1' then tokens = tokens - 1 end
  if tokens >= burst and running == 0 then
    redis.call('DEL', k)
  else
    redis.call('HSET', k, 'tokens', tostring(tokens), 'at', tostring(now))
    redis.call('PEXPIRE', k, math.ceil((burst - tokens) * every) + timeout)
  end
end
return 1
`)

// admit admits an attempt for user from addr and returns its release, which must be called
// exactly once; or how long to wait before trying again and which limit refused it; or the
// error of a store that cannot say (the login is then refused: 503).
func (l *limiter) admit(ctx context.Context, user, addr string) (release func(failed bool) error, wait time.Duration, by string, err error) {
	bs := l.buckets(user, addr)
	keys := l.keys(bs)
	id := attemptID()
	res, err := admitScript.Run(ctx, l.store.Redis, keys, l.args(id, false, bs)...).Int64Slice()
	if err != nil {
		return nil, 0, "", fmt.Errorf("count failed logins: %w", err)
	}
	if len(res) != 2 || res[1] < 0 || res[1] > int64(len(bs)) {
		return nil, 0, "", fmt.Errorf("count failed logins: unexpected reply %v", res)
	}
	if res[0] > 0 {
		return nil, time.Duration(res[0]) * time.Millisecond, bs[res[1]-1].kind, nil
	}
	return func(failed bool) error {
		// The client may be gone, but its failure counts: a context of its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := releaseScript.Run(ctx, l.store.Redis, keys, l.args(id, failed, bs)...).Err(); err != nil {
			// The attempt then holds its token until attemptTimeout: never a free try.
			return fmt.Errorf("count a login attempt's end: %w", err)
		}
		return nil
	}, 0, "", nil
}

// keys returns the Redis keys of bs.
func (l *limiter) keys(bs []bucket) []string {
	keys := make([]string, len(bs))
	for i, b := range bs {
		keys[i] = l.store.Prefix + b.kind + ":" + b.key
	}
	return keys
}

// args are the scripts' ARGV (see bucketState) for attempt id over buckets bs.
func (l *limiter) args(id string, failed bool, bs []bucket) []any {
	now, flag := "", "0" // "": Redis's clock
	if l.store.Now != nil {
		now = strconv.FormatInt(l.store.Now().UnixMilli(), 10)
	}
	if failed {
		flag = "1"
	}
	args := []any{now, id, attemptTimeout.Milliseconds(), flag}
	for _, b := range bs {
		args = append(args, b.limit.Burst, strconv.FormatFloat(float64(b.limit.Every)/float64(time.Millisecond), 'f', -1, 64))
	}
	return args
}

func attemptID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// clientAddress is the address a request came from, and the key it is rate-limited under.
//
// The address is the last entry of X-Forwarded-For: Envoy runs with use_remote_address, so it
// appends the address of the peer it accepted the connection from; every earlier entry came
// from the client and can be forged. Without the header (a request that did not pass Envoy,
// such as a test or a health check) it is the connection's RemoteAddr. The last entry is only
// Envoy's if Envoy sent the request: keystore serve removes the header from every request that
// did not come with the edge's client certificate (keystore/app, edgeForwarded), so a client
// reaching this handler directly cannot name an address of its choosing.
//
// IPv6 addresses are limited per /64, the smallest block a site is normally given: anyone
// holding one address holds the other 2^64 of its /64.
func clientAddress(r *http.Request) (addr, key string) {
	if vals := r.Header.Values("X-Forwarded-For"); len(vals) > 0 {
		last := vals[len(vals)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
			return a.String(), limitKey(a)
		}
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String(), limitKey(a)
	}
	// Not an IP (a Unix socket, say): all such requests share one bucket.
	return "unknown", "unknown"
}

func limitKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
