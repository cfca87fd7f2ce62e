package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/keygate-dev/keygate/keystore/users"
)

// OIDCLoginPath is the CLI's browser login: it trades a code of the OIDC provider's built-in
// CLI client (keystore/oidc cli.go) for a Login key.
const OIDCLoginPath = "/oidc/login"

// OIDCLoginRequest is the body of POST /oidc/login: the code the browser brought to the CLI's
// loopback listener, the PKCE verifier only the CLI knows, and the redirect URI it asked for.
type OIDCLoginRequest struct {
	Code         string `json:"code"`
	CodeVerifier string `json:"codeVerifier"`
	RedirectURI  string `json:"redirectUri"`
}

// ErrCodeRefused is a code CLICodes refuses: the client's fault, answered 401.
var ErrCodeRefused = errors.New("invalid, expired or already used authorization code, or a user who may not sign in")

// CLISignIn is who signed in to the CLI through the browser, as CLICodes judged them.
type CLISignIn struct {
	// User is the store's user, enabled and the one who signed in (same UID); nil for a single
	// sign-on identity, whom the store does not have.
	User *users.User
	// Name is the signed-in user's name (spec.user); Session the browser session's Login key
	// they signed in with: a single sign-on identity's CLI key is its child (child.go).
	Name, Session string
}

// CLICodes redeems codes of the provider's CLI client, once each (oidc.Provider through
// CLICodes). The user is judged now (a store user enabled and of the same UID; a single
// sign-on identity's session enabled, unexpired and theirs). Errors wrap ErrCodeRefused for
// every refusal; others mean the stores could not answer.
type CLICodes interface {
	RedeemCLICode(ctx context.Context, code, verifier, redirectURI string) (*CLISignIn, error)
}

// oidcLogin serves POST /oidc/login. Refused codes count against the client address's
// failure bucket, as refused passwords do: a code is 256 random bits, but a client that keeps
// sending bad ones is slowed all the same.
func (h *Handler) oidcLogin(w http.ResponseWriter, r *http.Request) {
	fail := func(result string) { h.metrics.logins.WithLabelValues(MethodOIDC, result).Inc() }
	if h.opts.CLICodes == nil {
		fail(LoginBadRequest)
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "this edge has no OIDC provider, so no browser login: use POST /auth/password/login")
		return
	}
	if r.Method != http.MethodPost {
		fail(LoginBadRequest)
		methodNotAllowed(w)
		return
	}
	req, code, msg := readOIDCLogin(w, r)
	if code != 0 {
		fail(LoginBadRequest)
		writeStatus(w, code, metav1.StatusReasonBadRequest, msg)
		return
	}
	l, err := h.OIDCLogin(r, req)
	if err != nil {
		writeLoginError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{AccessKey: l.Plain, Name: l.Key.Name, User: l.User.Name, ExpiresAt: l.ExpiresAt.Format(time.RFC3339)})
}

// OIDCLogin redeems req's code and issues a Login key to its user, with the quota, metrics and
// log lines of a password login. Every error is a *LoginFailure.
func (h *Handler) OIDCLogin(r *http.Request, req OIDCLoginRequest) (*Login, error) {
	addr, addrKey := clientAddress(r)
	release, failure := h.admit(r.Context(), MethodOIDC, "", addrKey, "client", addr)
	if failure != nil {
		return nil, failure
	}
	in, err := h.redeem(r.Context(), release, req)
	switch {
	case errors.Is(err, ErrCodeRefused):
		h.metrics.logins.WithLabelValues(MethodOIDC, LoginInvalid).Inc()
		// err names the cause (wrong verifier, another client's code, a disabled user), never
		// the code.
		h.log.Info("oidc login refused", "client", addr, "reason", err.Error())
		return nil, &LoginFailure{Code: http.StatusUnauthorized, Message: "the sign-in could not be completed: the code is invalid, expired or used, or the user may not sign in; run keygate login again", err: err}
	case err != nil:
		h.metrics.logins.WithLabelValues(MethodOIDC, LoginError).Inc()
		h.log.Error("oidc login failed: store unavailable", "client", addr, "error", err)
		return nil, &LoginFailure{Code: http.StatusServiceUnavailable, Message: "logins cannot be checked right now; try again later", err: err}
	}
	if in.User == nil {
		return h.issueChild(r.Context(), in, addr)
	}
	return h.issueFor(r.Context(), in.User, addr, MethodOIDC)
}

// redeem redeems the code and releases the attempt: a refusal costs a try, a store failure
// does not.
func (h *Handler) redeem(ctx context.Context, release func(failed bool) error, req OIDCLoginRequest) (in *CLISignIn, err error) {
	defer func() { h.release(release, errors.Is(err, ErrCodeRefused)) }()
	if req.Code == "" || req.CodeVerifier == "" || req.RedirectURI == "" {
		return nil, fmt.Errorf("%w: code, codeVerifier and redirectUri are all required", ErrCodeRefused)
	}
	return h.opts.CLICodes.RedeemCLICode(ctx, req.Code, req.CodeVerifier, req.RedirectURI)
}

// readOIDCLogin reads and checks the body. code is 0 when req is good, else the answer.
func readOIDCLogin(w http.ResponseWriter, r *http.Request) (req OIDCLoginRequest, code int, msg string) {
	const shape = `; send {"code": "...", "codeVerifier": "...", "redirectUri": "..."}`
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, http.StatusUnsupportedMediaType, "the body must be JSON, sent with Content-Type: application/json" + shape
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return req, http.StatusBadRequest, "the body could not be read (at most 64 KiB)" + shape
	}
	strict, err := sigsjson.UnmarshalStrict(body, &req)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		return req, http.StatusBadRequest, "the body is not a JSON login request: " + err.Error() + shape
	}
	return req, 0, ""
}
