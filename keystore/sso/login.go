package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
)

// StateTTL is how long a login may take at the IdP: the state cookie and the pending login in
// Redis expire after it.
const StateTTL = 10 * time.Minute

// stateCookie holds the login's state in the browser that started it: the callback must come
// with the same value in its query (from the IdP) and in this cookie (from the browser), so a
// callback URL sent to someone else's browser (login CSRF, a fixated session) fails.
const stateCookie = "keygate_sso_state"

// maxAuthRequestID bounds the authRequestID kept with a pending login.
const maxAuthRequestID = 256

// pending is a started login, kept in Redis under its state until the callback takes it (GETDEL:
// a state is used once) or StateTTL passes.
type pending struct {
	Connector     string `json:"connector"`
	Nonce         string `json:"nonce"`
	Verifier      string `json:"verifier"`
	AuthRequestID string `json:"authRequestID,omitempty"`
}

func pendingKey(state string) string { return "keygate:sso:state:{" + state + "}" }

// random is 256 bits from crypto/rand, base64url.
func random() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request, c *connector) {
	ctx := r.Context()
	reqID := r.URL.Query().Get("authRequestID")
	if len(reqID) > maxAuthRequestID {
		page(w, http.StatusBadRequest, "Sign-in failed", "The authorization request is not valid.")
		return
	}
	if reqID != "" && h.opts.AuthRequests != nil {
		if _, err := h.opts.AuthRequests.Describe(ctx, reqID); err != nil {
			page(w, http.StatusBadRequest, "Sign-in failed", "The application's sign-in request is unknown or has expired; start again from the application.")
			return
		}
	}
	ok, wait, err := h.starts.Allow(r)
	if err != nil {
		h.log.Error("sso login: sign-in starts cannot be counted", "connector", c.id, "error", err)
		h.metrics.login(c.id, resultError)
		page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Sign-ins cannot be started right now; try again later.")
		return
	}
	if !ok {
		h.metrics.login(c.id, resultLimited)
		w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(wait)))
		page(w, http.StatusTooManyRequests, "Too many sign-ins", "Too many sign-ins were started from your address; wait a minute and try again.")
		return
	}
	p, err := c.discover(ctx)
	if err != nil {
		h.log.Error("sso login: identity provider unreachable", "connector", c.id, "error", err)
		h.metrics.login(c.id, resultError)
		page(w, http.StatusBadGateway, "Sign-in unavailable", "The identity provider cannot be reached right now; try again later.")
		return
	}
	cfg, err := c.oauth2(p)
	if err != nil {
		h.log.Error("sso login: connector misconfigured", "connector", c.id, "error", err)
		h.metrics.login(c.id, resultError)
		page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "This sign-in method is not available right now.")
		return
	}
	state, pl := random(), pending{Connector: c.id, Nonce: random(), Verifier: oauth2.GenerateVerifier(), AuthRequestID: reqID}
	if err := h.savePending(ctx, state, pl); err != nil {
		h.log.Error("sso login: cannot store the pending login", "connector", c.id, "error", err)
		h.metrics.login(c.id, resultError)
		page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Sign-in is not available right now; try again later.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: stateCookie, Value: state, Path: "/auth/" + c.id + "/", MaxAge: int(StateTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, cfg.AuthCodeURL(state, oidc.Nonce(pl.Nonce), oauth2.S256ChallengeOption(pl.Verifier)), http.StatusSeeOther)
}

func (h *Handler) savePending(ctx context.Context, state string, pl pending) error {
	data, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	return h.opts.Redis.SetNX(ctx, pendingKey(state), data, StateTTL).Err()
}

// errBadState is a callback whose state is missing, not this browser's, expired or used.
var errBadState = errors.New("bad state")

// takePending checks the callback's state against the browser's cookie and takes the pending
// login from Redis, once: a second callback with the same state finds nothing.
func (h *Handler) takePending(w http.ResponseWriter, r *http.Request, c *connector) (*pending, error) {
	state := r.URL.Query().Get("state")
	cookie, err := r.Cookie(stateCookie)
	// The cookie has done its work whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Path: "/auth/" + c.id + "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(state), []byte(cookie.Value)) != 1 {
		return nil, errBadState
	}
	data, err := h.opts.Redis.GetDel(r.Context(), pendingKey(state)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errBadState
	}
	if err != nil {
		return nil, err
	}
	var pl pending
	if err := json.Unmarshal(data, &pl); err != nil || pl.Connector != c.id {
		return nil, errBadState
	}
	return &pl, nil
}

// finish starts the browser's session with the new key, and sends it back to the OIDC
// provider's request it signed in for, if any.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, pl *pending, s *session.Session, plain string, expires time.Time) {
	session.Set(w, plain, expires)
	if pl.AuthRequestID != "" && h.opts.AuthRequests != nil {
		to, err := h.opts.AuthRequests.Complete(r.Context(), pl.AuthRequestID, s)
		if err == nil {
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		h.log.Info("sso login: the application's request could not be completed", "user", s.User, "error", err)
		page(w, http.StatusOK, "Signed in", "Signed in as "+s.User+", but the application's sign-in request has expired; start again from the application.")
		return
	}
	page(w, http.StatusOK, "Signed in", "Signed in as "+s.User+".")
}
