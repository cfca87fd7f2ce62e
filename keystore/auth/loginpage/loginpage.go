// Package loginpage is the login page under /auth/ on the edge: plain server-rendered HTML and a
// form, no script. Envoy strips /auth before forwarding, so the handler sees:
//
//	GET  /login[?authRequestID=ID]   the sign-in form ("Sign in to <client>" for a pending
//	                                 request of the OIDC provider); with a valid session and
//	                                 an ID, the request is completed at once: 303 to it
//	POST /login                      username, password, authRequestID, csrfToken: checks the
//	                                 password as POST /auth/password/login does (auth.Handler.
//	                                 Login), starts the session, completes the request
//	POST /signout                    csrfToken: ends the session (its Login key is deleted)
//
// The JSON POST /auth/logout (Authorization: Bearer) stays auth.Handler's; the form's sign-out
// has its own path, so neither guesses from the headers which one a client meant.
//
// The session is a Login key in a cookie (keystore/auth/session). Forms are protected twice
// against cross-site posts: net/http's CrossOriginProtection refuses a browser's cross-origin
// POST (Sec-Fetch-Site, else Origin against Host), and every form carries a token bound to a
// random per-browser cookie and to what the form does (csrf.go).
//
// A successful POST /login that completes a request answers 200 with a page that moves on by
// <meta http-equiv="refresh">, not with a 303: Chromium applies the page's CSP form-action
// 'self' to every redirect that follows a form's POST, so a 303 chain ending at the client's
// redirect URI (another origin) is blocked. A GET completed at once is no form submission and
// gets its 303.
package loginpage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
)

// Paths the handler serves, after Envoy has stripped /auth.
const (
	LoginPath   = "/login"
	SignoutPath = "/signout"
)

// Prefix is where the edge serves the handler: the browser's URLs start with it.
const Prefix = "/auth"

// maxFormBytes bounds a posted form: a user name, a password, an ID and a token.
const maxFormBytes = 64 << 10

//go:embed assets/page.html assets/style.css
var assets embed.FS

var (
	pageTemplate = template.Must(template.ParseFS(assets, "assets/page.html"))
	styleCSS     = mustRead("assets/style.css")
	// csp allows the one inline style by its hash, and nothing else: no script, no image, no
	// frame, forms posting only here.
	csp = "default-src 'none'; style-src 'sha256-" + hashOf(styleCSS) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Connector is a single sign-on connector offered on the page: "Log in with <DisplayName>",
// linking to /auth/<ID>/login.
type Connector struct {
	ID, DisplayName string
}

// Options configure a Handler. Auth and Sessions are required.
type Options struct {
	// Auth checks passwords and ends sessions, as for the JSON endpoints.
	Auth *auth.Handler
	// Sessions reads the session cookie.
	Sessions *session.Reader
	// Requests are the OIDC provider's pending requests; nil while there is no provider, and
	// then every authRequestID is unknown.
	Requests session.AuthRequests
	// Connectors lists the single sign-on connectors at each rendering (the configuration is
	// reloaded on change); nil: none.
	Connectors func() []Connector
	// Log receives a line per refusal the log of auth.Handler does not have; nil discards.
	Log *slog.Logger
}

// Handler serves the login page; see the package comment.
type Handler struct {
	opts  Options
	log   *slog.Logger
	cross *http.CrossOriginProtection
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Auth == nil || opts.Sessions == nil {
		return nil, errors.New("loginpage: Auth and Sessions are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{opts: opts, log: log, cross: http.NewCrossOriginProtection()}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	switch {
	case r.URL.Path == LoginPath && r.Method == http.MethodGet:
		// Not HEAD: a GET may complete a request, which a HEAD must not.
		h.show(w, r)
	case r.URL.Path == LoginPath && r.Method == http.MethodPost:
		h.post(w, r, h.signIn)
	case r.URL.Path == SignoutPath && r.Method == http.MethodPost:
		h.post(w, r, h.signOut)
	case r.URL.Path == LoginPath || r.URL.Path == SignoutPath:
		hd.Set("Allow", map[bool]string{true: "GET, POST", false: "POST"}[r.URL.Path == LoginPath])
		h.message(w, http.StatusMethodNotAllowed, "Not allowed", "This page does not take that method.")
	default:
		h.message(w, http.StatusNotFound, "Not found", "There is no such page.")
	}
}

// post checks that a form post comes from this site, reads the form and calls next.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request)) {
	if err := h.cross.Check(r); err != nil {
		h.log.Info("login page: cross-origin form post refused", "path", r.URL.Path, "secFetchSite", r.Header.Get("Sec-Fetch-Site"), "origin", r.Header.Get("Origin"))
		h.message(w, http.StatusForbidden, "Refused", "This form was sent from another site.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	next(w, r)
}

// pending describes the request id, or says it is unknown (as every id is without a provider).
func (h *Handler) pending(ctx context.Context, id string) (session.Pending, error) {
	if h.opts.Requests == nil {
		return session.Pending{}, session.ErrUnknownRequest
	}
	return h.opts.Requests.Describe(ctx, id)
}

// connectors are the SSO links for the page, each carrying the request id.
func (h *Handler) connectors(id string) []link {
	if h.opts.Connectors == nil {
		return nil
	}
	var out []link
	for _, c := range h.opts.Connectors() {
		u := Prefix + "/" + url.PathEscape(c.ID) + "/login"
		if id != "" {
			u += "?" + url.Values{"authRequestID": {id}}.Encode()
		}
		name := c.DisplayName
		if name == "" {
			name = c.ID
		}
		out = append(out, link{Name: name, URL: u})
	}
	return out
}

// retryAfter sets Retry-After from a 429 LoginFailure.
func retryAfter(w http.ResponseWriter, f *auth.LoginFailure) {
	w.Header().Set("Retry-After", strconv.Itoa(auth.RetryAfterSeconds(f.RetryAfter)))
}

// safeRedirect reports whether u may be sent to a browser: an http(s) URL or a path on this
// origin. The provider makes these URLs; this is the last check before a browser follows one.
func safeRedirect(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	switch p.Scheme {
	case "https", "http":
		return p.Host != ""
	case "":
		return p.Host == "" && strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//") && !strings.HasPrefix(u, "/\\")
	}
	return false
}
