package loginpage

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
)

const (
	unknownRequest = "This sign-in request is unknown or has expired. Go back to the application and start again."
	unavailable    = "Sign-in is not available right now. Try again later."
)

// show is GET /login: complete the request at once for a signed-in browser, else the form.
func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, err := h.opts.Sessions.Lookup(ctx, w, r)
	if err != nil && !errors.Is(err, session.ErrNoSession) {
		h.log.Error("login page: cannot read the session", "error", err)
		h.message(w, http.StatusServiceUnavailable, "Unavailable", unavailable)
		return
	}
	id := r.URL.Query().Get("authRequestID")
	if id == "" {
		if s != nil {
			h.render(w, http.StatusOK, view{Title: "Signed in", SignedInAs: s.User,
				Token: formToken(browserValue(w, r), purposeSignout, "")})
			return
		}
		h.form(w, r, http.StatusOK, "", "", "", "")
		return
	}
	p, err := h.pending(ctx, id)
	if err != nil {
		h.requestGone(w, err)
		return
	}
	if s == nil {
		h.form(w, r, http.StatusOK, id, p.ClientName, "", "")
		return
	}
	redirect, err := h.complete(r, id, s)
	if err != nil {
		h.requestGone(w, err)
		return
	}
	http.Redirect(w, r, redirect, http.StatusSeeOther)
}

// signIn is POST /login.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	id, username := r.PostForm.Get("authRequestID"), r.PostForm.Get("username")
	clientName := ""
	if id != "" {
		// Before the password: a dead request must not cost a try, nor make a session for
		// nothing, and the form shows the client's name again on a failure.
		p, err := h.pending(r.Context(), id)
		if err != nil {
			h.requestGone(w, err)
			return
		}
		clientName = p.ClientName
	}
	if !validToken(r, r.PostForm.Get("csrfToken"), purposeLogin, id) {
		h.log.Info("login page: form token missing or wrong", "authRequestID", id)
		h.form(w, r, http.StatusForbidden, id, clientName, username, "This form has expired or did not come from this page. Sign in again.")
		return
	}
	l, err := h.opts.Auth.Login(r, username, r.PostForm.Get("password"))
	if err != nil {
		h.loginRefused(w, r, err, id, clientName, username)
		return
	}
	session.Set(w, l.Plain, l.ExpiresAt)
	if id == "" {
		http.Redirect(w, r, Prefix+LoginPath, http.StatusSeeOther)
		return
	}
	redirect, err := h.complete(r, id, &session.Session{User: l.User.Name, Key: l.Key})
	if err != nil {
		h.requestGone(w, err)
		return
	}
	// Not a 303: see the package comment (form-action and redirects).
	h.render(w, http.StatusOK, view{Title: "Signed in", Continue: redirect})
}

// loginRefused answers a refused password login with the form again (the user name kept,
// never the password), or a message page when the stores fail.
func (h *Handler) loginRefused(w http.ResponseWriter, r *http.Request, err error, id, clientName, username string) {
	var f *auth.LoginFailure
	if !errors.As(err, &f) || f.Code >= 500 {
		h.message(w, http.StatusServiceUnavailable, "Unavailable", unavailable)
		return
	}
	msg := f.Message
	switch f.Code {
	case http.StatusUnauthorized:
		msg = "Wrong username or password."
	case http.StatusTooManyRequests:
		retryAfter(w, f)
		msg = fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", auth.RetryAfterSeconds(f.RetryAfter))
	case http.StatusBadRequest:
		msg = "Enter your username and password."
	}
	h.form(w, r, f.Code, id, clientName, username, msg)
}

// complete finishes the request id for s and checks where it sends the browser.
func (h *Handler) complete(r *http.Request, id string, s *session.Session) (string, error) {
	redirect, err := h.opts.Requests.Complete(r.Context(), id, s)
	if err != nil {
		return "", err
	}
	if !safeRedirect(redirect) {
		h.log.Error("login page: the provider's redirect is not an http(s) URL; not followed", "authRequestID", id)
		return "", errors.New("unsafe redirect")
	}
	h.log.Info("login page: request completed", "user", s.User, "key", s.Key.Name, "authRequestID", id)
	return redirect, nil
}

// requestGone answers a request that cannot be described or completed: 400 for an unknown one,
// 503 when the provider cannot answer.
func (h *Handler) requestGone(w http.ResponseWriter, err error) {
	if errors.Is(err, session.ErrUnknownRequest) {
		h.message(w, http.StatusBadRequest, "Sign-in request not found", unknownRequest)
		return
	}
	h.log.Error("login page: the OIDC provider cannot answer", "error", err)
	h.message(w, http.StatusServiceUnavailable, "Unavailable", unavailable)
}

// signOut is POST /signout: the session's key is deleted and the cookie cleared.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if !validToken(r, r.PostForm.Get("csrfToken"), purposeSignout, "") {
		h.message(w, http.StatusForbidden, "Refused", "This form has expired or did not come from this page.")
		return
	}
	if plain := session.Plain(r); plain != "" {
		_, err := h.opts.Auth.Logout(r, plain)
		if f := (*auth.LogoutFailure)(nil); errors.As(err, &f) && f.Code >= 500 {
			h.message(w, http.StatusServiceUnavailable, "Unavailable", "Signing out is not possible right now. Try again later.")
			return
		}
		// Refused otherwise (unknown, disabled or not a Login key): there is no session to end
		// but the cookie, which goes below.
	}
	session.Clear(w)
	http.Redirect(w, r, Prefix+LoginPath, http.StatusSeeOther)
}
