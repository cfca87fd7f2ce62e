package auth

import (
	"net/http"
	"time"
)

// DefaultStartLimit bounds how often one client address may start a sign-in that leaves state
// behind (a single sign-on login keeps its state, nonce and PKCE verifier in Redis for
// minutes): 30 at once, then one every 2 s. A person starts a few; a flood from one address
// cannot fill Redis.
var DefaultStartLimit = Limit{Burst: 30, Every: 2 * time.Second}

// AddressLimiter limits requests per client address (read as the login endpoints read it: the
// last X-Forwarded-For entry Envoy appended), every request costing a token, whatever its
// outcome. Its buckets are in the LimitStore, shared by every replica, and go once refilled.
type AddressLimiter struct {
	l *limiter
}

// NewAddressLimiter returns a limiter of l per address, counted in store; a zero l is
// DefaultStartLimit.
func NewAddressLimiter(store LimitStore, l Limit) *AddressLimiter {
	if l == (Limit{}) {
		l = DefaultStartLimit
	}
	if store.Prefix == "" {
		store.Prefix = DefaultLimitPrefix
	}
	store.Prefix += "start:" // apart from the logins' address buckets
	return &AddressLimiter{l: newLimiter(store, l, l, l)}
}

// Allow takes a token for r's address, or says how long until one is free. A store that cannot
// say is an error: the caller refuses the request.
func (a *AddressLimiter) Allow(r *http.Request) (ok bool, retryAfter time.Duration, err error) {
	_, key := clientAddress(r)
	release, wait, _, err := a.l.admit(r.Context(), "", key)
	if err != nil || release == nil {
		return false, wait, err
	}
	return true, 0, release(true)
}
