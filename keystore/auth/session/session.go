// Package session is the browser session of the login pages under /auth/: who signed in, and
// how the OIDC provider's pending authorization requests are finished for them. The password
// form (keystore/auth/loginpage) and the single sign-on connectors (keystore/sso) both start a
// session; the OIDC provider (keystore/oidc) finishes its requests with it.
//
// A session is a Login access key, the same kind POST /auth/password/login answers: the cookie
// holds the plain key, Redis only its digest. So every rule of keys holds for sessions too: they
// expire, an administrator sees them (kubectl get ownedaccesskeys) and ends one by deleting or
// disabling its key, and a user deleted or disabled in the store has no session. The cookie is
// HttpOnly (no script reads it), Secure, SameSite=Lax (sent on the top-level redirect back
// from an identity provider, never on a cross-site POST), and its Path is /auth/, so the key
// goes to the login pages and nowhere else on the edge.
package session

import (
	"context"
	"errors"
	"net/http"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// CookieName is the session cookie. The __Host- prefix would forbid the Path that keeps the
// key away from the rest of the edge, so the name is plain and the attributes say the rest.
const CookieName = "keygate_session"

// CookiePath is where the browser sends the cookie: the login pages, on the edge.
const CookiePath = "/auth/"

// ErrNoSession is returned by Reader.Lookup when the request has no valid session.
var ErrNoSession = errors.New("no session")

// Session is a signed-in browser.
type Session struct {
	// User is the key's spec.user: a user of the user store, or an external identity's name.
	User string
	// Key is the session's Login key (without spec.key). Its spec.identity is set for a session
	// started by a single sign-on connector.
	Key *v1.OwnedAccessKey
}

// Set writes the session cookie for the plain Login key, living until expires (the key's
// expiry).
func Set(w http.ResponseWriter, plainKey string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: plainKey, Path: CookiePath, Expires: expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// Clear removes the session cookie.
func Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: CookiePath, MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// Plain returns the plain key of the request's session cookie, "" when there is none.
func Plain(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// Pending describes an authorization request of the OIDC provider waiting for its user to
// sign in, for the login page to show ("Sign in to Argo CD").
type Pending struct {
	ClientName string
	ClientID   string
	Scopes     []string
}

// ErrUnknownRequest is returned by AuthRequests for an ID that names no pending request (never
// made, expired, or already finished).
var ErrUnknownRequest = errors.New("unknown or expired authorization request")

// AuthRequests are the OIDC provider's pending authorization requests (keystore/oidc).
type AuthRequests interface {
	// Describe says what the request with this ID asks for.
	Describe(ctx context.Context, id string) (Pending, error)
	// Complete records that s signed in for the request, and returns the URL to send the browser
	// to (the provider's callback, which redirects to the client with a code).
	Complete(ctx context.Context, id string, s *Session) (redirect string, err error)
}
