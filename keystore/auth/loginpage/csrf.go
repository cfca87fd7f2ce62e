package loginpage

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// CSRFCookieName holds the browser's random value that form tokens are bound to. __Host-
// makes the browser accept it only from this origin over HTTPS, with Path=/ and no Domain, so a
// sibling subdomain cannot plant its own value (the weakness of double-submit tokens).
const CSRFCookieName = "__Host-keygate_csrf"

// csrfLifetime is how long a rendered form stays good: long enough to type a password after
// lunch, short enough that a stolen page is of no use tomorrow. Every rendering renews it.
const csrfLifetime = time.Hour

// csrfValueLen is the length of the cookie's value: 32 random bytes, base64url.
var csrfValueLen = base64.RawURLEncoding.EncodedLen(32)

// Purposes a token is bound to, so a sign-out token never signs anyone in.
const (
	purposeLogin   = "login"
	purposeSignout = "signout"
)

// browserValue returns the request's CSRF cookie value, or makes a new one and sets it on w.
// It is set again either way, so the cookie lives csrfLifetime from the last page shown.
func browserValue(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(CSRFCookieName); err == nil && len(c.Value) == csrfValueLen {
		v = c.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b) // never fails (crypto/rand panics instead)
		v = base64.RawURLEncoding.EncodeToString(b)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CSRFCookieName, Value: v, Path: "/", MaxAge: int(csrfLifetime / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return v
}

// formToken is the token a form carries: an HMAC, keyed with the browser's cookie value, of
// what the form does. A cross-site attacker can neither read the victim's cookie (HttpOnly, this
// origin only) nor plant theirs (__Host-), so cannot make a token the victim's browser would
// send with a matching cookie: no login CSRF, no completing someone's request. Keying with the
// cookie needs no server secret, so every keystore replica checks every form.
func formToken(value, purpose, requestID string) string {
	m := hmac.New(sha256.New, []byte(value))
	m.Write([]byte(purpose + "\x00" + requestID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validToken reports whether the posted token matches the request's cookie for purpose and
// requestID.
func validToken(r *http.Request, token, purpose, requestID string) bool {
	c, err := r.Cookie(CSRFCookieName)
	if err != nil || len(c.Value) != csrfValueLen || token == "" {
		return false
	}
	return hmac.Equal([]byte(token), []byte(formToken(c.Value, purpose, requestID)))
}
