package auth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiterEntries bounds each of the limiter's maps (clients, addresses, user names). A
// bucket holds a user name of at most 63 bytes and an address, so 100,000 of them take a few
// MB. Only an attack fills a map; see bucketSet.makeRoom for what happens then.
const maxLimiterEntries = 100_000

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
type limiter struct {
	mu                    sync.Mutex
	now                   func() time.Time
	clients, addrs, users bucketSet
}

// bucketSet is the buckets of one kind of key.
type bucketSet struct {
	name      string
	burst     int
	every     rate.Limit
	refill    time.Duration // an empty bucket is full again after this
	max       int
	m         map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	key string
	lim *rate.Limiter
	// inflight is the number of admitted attempts not yet released.
	inflight int
}

func newLimiter(now func() time.Time, client, address, user Limit) *limiter {
	set := func(name string, l Limit) bucketSet {
		return bucketSet{name: name, burst: l.Burst, every: rate.Every(l.Every), refill: time.Duration(l.Burst) * l.Every,
			max: maxLimiterEntries, m: map[string]*bucket{}}
	}
	return &limiter{now: now, clients: set(limitClient, client), addrs: set(limitAddress, address), users: set(limitUser, user)}
}

// attempt is an admitted login attempt; release it exactly once.
type attempt struct {
	l *limiter
	// buckets are the client's, the address's and the user's; nil where there is none.
	buckets [3]*bucket
}

// keyed is one bucket an attempt needs: the set and the key in it ("" for none).
type keyed struct {
	set *bucketSet
	key string
}

// buckets is what an attempt for user (empty: a name that cannot exist, which gets no client
// or user bucket, only its address's) from addr counts against.
func (l *limiter) buckets(user, addr string) [3]keyed {
	client := ""
	if user != "" {
		client = user + " " + addr // user names are DNS labels: no spaces
	}
	return [3]keyed{{&l.clients, client}, {&l.addrs, addr}, {&l.users, user}}
}

// admit admits an attempt for user from addr, or returns how long to wait before trying again
// and which limit refused it.
func (l *limiter) admit(user, addr string) (*attempt, time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ks := l.buckets(user, addr)
	var wait time.Duration
	by := ""
	// The longest wait: a try needs a token from every bucket.
	for _, k := range ks {
		if w := k.set.wait(k.key, now); w > wait {
			wait, by = w, k.set.name
		}
	}
	if wait > 0 {
		return nil, wait, by
	}
	a := &attempt{l: l}
	for i, k := range ks {
		if k.key != "" {
			a.buckets[i] = k.set.take(k.key, now)
		}
	}
	return a, 0, ""
}

// release ends the attempt; a failed one costs a token from each of its buckets.
func (a *attempt) release(failed bool) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for i, set := range []*bucketSet{&l.clients, &l.addrs, &l.users} {
		b := a.buckets[i]
		if b == nil {
			continue
		}
		b.inflight--
		if failed {
			// ReserveN, not AllowN: it takes the token even when the bucket is already empty
			// (concurrent failures), pushing the next try further out, as it should.
			b.lim.ReserveN(now, 1)
		}
		// Buckets with nothing to remember go at once, so that the maps hold only keys that
		// failed recently: successful logins leave nothing behind.
		set.dropIfIdle(b, now)
	}
}

// wait is how long until key's bucket has a token beyond those its running attempts may use.
func (s *bucketSet) wait(key string, now time.Time) time.Duration {
	if key == "" {
		return 0
	}
	b, ok := s.m[key]
	if !ok {
		return 0
	}
	avail := b.lim.TokensAt(now) - float64(b.inflight)
	if avail >= 1 {
		return 0
	}
	return time.Duration((1 - avail) / float64(s.every) * float64(time.Second))
}

// take returns key's bucket, made if need be, with one more attempt running.
func (s *bucketSet) take(key string, now time.Time) *bucket {
	b, ok := s.m[key]
	if !ok {
		s.makeRoom(now)
		b = &bucket{key: key, lim: rate.NewLimiter(s.every, s.burst)}
		s.m[key] = b
	}
	b.inflight++
	return b
}

// idle reports whether b remembers nothing: no attempt running and a full bucket. Such a
// bucket can be dropped; a new one behaves the same.
func (s *bucketSet) idle(b *bucket, now time.Time) bool {
	return b.inflight == 0 && b.lim.TokensAt(now) >= float64(s.burst)
}

func (s *bucketSet) dropIfIdle(b *bucket, now time.Time) {
	// makeRoom never evicts a bucket with running attempts, so the key still maps to b; the
	// comparison only guards that.
	if b != nil && s.m[b.key] == b && s.idle(b, now) {
		delete(s.m, b.key)
	}
}

// makeRoom drops buckets that have refilled (at most once per refill time: it walks the whole
// map), and, when the map is still full, one arbitrary bucket without running attempts. That
// last resort forgets some key's recent failures; it only happens when an attacker has failed
// for maxLimiterEntries different keys within a refill time, and the other kinds of bucket
// still hold.
func (s *bucketSet) makeRoom(now time.Time) {
	if now.Sub(s.lastSweep) >= s.refill {
		s.lastSweep = now
		for k, b := range s.m {
			if s.idle(b, now) {
				delete(s.m, k)
			}
		}
	}
	if len(s.m) < s.max {
		return
	}
	for k, b := range s.m { // map order is unspecified: an arbitrary victim
		if b.inflight == 0 {
			delete(s.m, k)
			return
		}
	}
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
