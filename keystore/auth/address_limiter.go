package auth

import (
	"net/http"
	"sync"
	"time"
)

// DefaultStartLimit bounds how often one client address may start a sign-in that leaves state
// behind (a single sign-on login keeps its state, nonce and PKCE verifier in Redis for
// minutes): 30 at once, then one every 2 s. A person starts a few; a flood from one address
// cannot fill Redis.
var DefaultStartLimit = Limit{Burst: 30, Every: 2 * time.Second}

// AddressLimiter limits requests per client address (read as the login endpoints read it: the
// last X-Forwarded-For entry Envoy appended), every request costing a token, whatever its
// outcome. It forgets addresses whose bucket has refilled, and holds at most
// maxLimiterEntries of them.
type AddressLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	set bucketSet
}

// NewAddressLimiter returns a limiter of l per address; a zero l is DefaultStartLimit. now nil
// is time.Now.
func NewAddressLimiter(l Limit, now func() time.Time) *AddressLimiter {
	if l == (Limit{}) {
		l = DefaultStartLimit
	}
	if now == nil {
		now = time.Now
	}
	return &AddressLimiter{now: now, set: newLimiter(now, l, l, l).addrs}
}

// Allow takes a token for r's address, or says how long until one is free.
func (a *AddressLimiter) Allow(r *http.Request) (ok bool, retryAfter time.Duration) {
	_, key := clientAddress(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if w := a.set.wait(key, now); w > 0 {
		return false, w
	}
	b := a.set.take(key, now)
	b.inflight--
	b.lim.ReserveN(now, 1)
	return true, 0
}
