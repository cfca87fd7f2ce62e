package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Login is a password login that succeeded.
type Login struct {
	// Plain is the new Login key: for the client only, never to be logged.
	Plain string
	// Key is the stored key (without spec.key).
	Key  *v1.OwnedAccessKey
	User *users.User
	// ExpiresAt is when Key stops working (UTC).
	ExpiresAt time.Time
}

// LoginFailure is a refused or failed login: the HTTP status to answer and a message for the
// user, the same whatever answers it (the JSON endpoint, the login page).
type LoginFailure struct {
	// Code is 400 (a field missing), 401 (unknown user, wrong password or disabled user: one
	// answer for all three), 429 (too many failed logins), 503 (a store cannot answer) or 500.
	Code    int
	Message string
	// RetryAfter is, with 429, how long to wait before trying again.
	RetryAfter time.Duration
	err        error
}

func (e *LoginFailure) Error() string { return e.Message }
func (e *LoginFailure) Unwrap() error { return e.err }

// invalidCredentials is the one message for every refused login.
const invalidCredentials = "invalid username or password"

// Login checks a user's password and issues a Login key: the one path of every password login,
// the JSON endpoint's and the login page's, so that both share the failure limiter, the single
// 401 for every refusal, the login-key quota, the metrics and the log lines. r gives the client
// address the limiter counts. Every error is a *LoginFailure.
func (h *Handler) Login(r *http.Request, username, password string) (*Login, error) {
	if username == "" || password == "" {
		h.metrics.logins.WithLabelValues(MethodPassword, LoginBadRequest).Inc()
		return nil, &LoginFailure{Code: http.StatusBadRequest, Message: "username and password are both required"}
	}
	addr, addrKey := clientAddress(r)
	// Only names that could exist get a bucket of their own: the rest can never log in, and
	// would only let a client fill the limiter with junk. The address bucket holds for them.
	userKey := ""
	if validation.IsDNS1123Label(username) == nil {
		userKey = username
	}
	release, failure := h.admit(r.Context(), MethodPassword, userKey, addrKey, h.userAttr(username), "client", addr)
	if failure != nil {
		return nil, failure
	}
	u, err := h.authenticate(r.Context(), release, username, password)
	switch {
	case errors.Is(err, users.ErrInvalidCredentials):
		h.metrics.logins.WithLabelValues(MethodPassword, LoginInvalid).Inc()
		h.log.Info("login refused: invalid credentials", h.userAttr(username), "client", addr)
		return nil, &LoginFailure{Code: http.StatusUnauthorized, Message: invalidCredentials, err: err}
	case err != nil:
		h.metrics.logins.WithLabelValues(MethodPassword, LoginError).Inc()
		h.log.Error("login failed: user store unavailable", h.userAttr(username), "client", addr, "error", err)
		return nil, &LoginFailure{Code: http.StatusServiceUnavailable, Message: "logins cannot be checked right now; try again later", err: err}
	}
	return h.issueFor(r.Context(), u, addr, MethodPassword)
}

// issueFor issues the Login key of u, who has just proven who they are by method, and counts
// the login.
func (h *Handler) issueFor(ctx context.Context, u *users.User, addr, method string) (*Login, error) {
	plain, key, evicted, err := h.issue(ctx, u, method)
	if len(evicted) > 0 {
		h.log.Info("login: deleted the user's oldest login keys to stay within the bound", "user", u.Name, "keys", evicted, "maxLoginKeys", h.opts.MaxLoginKeys)
	}
	if err != nil {
		h.metrics.logins.WithLabelValues(method, LoginError).Inc()
		h.log.Error("login failed: cannot create the access key", "user", u.Name, "client", addr, "error", err)
		if errors.Is(err, store.ErrInvalid) { // a key this package built is refused: a bug
			return nil, &LoginFailure{Code: http.StatusInternalServerError, Message: "the login key could not be created", err: err}
		}
		return nil, &LoginFailure{Code: http.StatusServiceUnavailable, Message: "access keys cannot be created right now; try again later", err: err}
	}
	expires := key.CreationTimestamp.Add(time.Duration(key.Spec.TTL) * time.Second).UTC()
	h.metrics.logins.WithLabelValues(method, LoginOK).Inc()
	h.log.Info("login", "method", method, "user", u.Name, "key", key.Name, "client", addr, "expiresAt", expires.Format(time.RFC3339))
	return &Login{Plain: plain, Key: key, User: u, ExpiresAt: expires}, nil
}

// admit admits a login attempt by method for user (a bucket key; "" for none) from addr, and
// returns its release; or the failure to answer: 429 past a limit, 503 when the limits cannot be
// read (no guess goes uncounted). attrs go into the log line.
func (h *Handler) admit(ctx context.Context, method, user, addr string, attrs ...any) (func(failed bool) error, *LoginFailure) {
	what := map[string]string{MethodPassword: "login", MethodOIDC: "oidc login"}[method]
	release, wait, by, err := h.limiter.admit(ctx, user, addr)
	if err != nil {
		h.metrics.logins.WithLabelValues(method, LoginError).Inc()
		h.log.Error(what+" failed: failed logins cannot be counted", append(attrs, "error", err)...)
		return nil, &LoginFailure{Code: http.StatusServiceUnavailable, Message: "logins cannot be checked right now; try again later", err: err}
	}
	if release == nil {
		h.metrics.logins.WithLabelValues(method, LoginLimited).Inc()
		h.log.Warn(what+" refused: too many failed logins", append(attrs, "limit", by, "retryAfterSeconds", RetryAfterSeconds(wait))...)
		return nil, &LoginFailure{Code: http.StatusTooManyRequests, RetryAfter: wait,
			Message: fmt.Sprintf("too many failed logins; try again in %d seconds", RetryAfterSeconds(wait))}
	}
	return release, nil
}

// RetryAfterSeconds is wait as Retry-After says it: whole seconds, rounded up.
func RetryAfterSeconds(wait time.Duration) int { return int(math.Ceil(wait.Seconds())) }

// authenticate checks the password and releases the attempt: a refusal costs a try; an error
// of the user store, not the client's fault, does not. The deferred release holds even if
// Authenticate panics (net/http survives a handler's panic), so a bucket is not left with an
// attempt running until its timeout.
func (h *Handler) authenticate(ctx context.Context, release func(failed bool) error, name, password string) (u *users.User, err error) {
	defer func() { h.release(release, errors.Is(err, users.ErrInvalidCredentials)) }()
	return h.opts.Users.Authenticate(ctx, name, password)
}

// release ends an admitted attempt. Where the store cannot count its end, the attempt keeps its
// token until attemptTimeout: a failure is never free.
func (h *Handler) release(release func(failed bool) error, failed bool) {
	if err := release(failed); err != nil {
		h.log.Warn("login attempt's end not counted; its try stays taken until it times out", "timeout", attemptTimeout, "error", err)
	}
}
