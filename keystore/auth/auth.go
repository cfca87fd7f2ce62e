// Package auth serves the edge's public login endpoints, /auth/ on the edge. Envoy strips the
// prefix before forwarding (and ext_authz lets these routes through without a key), so the
// handler sees:
//
//	POST /password/login   Content-Type: application/json
//	                       {"username": "alice", "password": "..."}
//	  200 {"accessKey": "kgk_...", "name": "login-alice-x7k2p", "user": "alice",
//	       "expiresAt": "2030-01-02T15:04:05Z"}
//
//	POST /logout           Authorization: Bearer <access key of type Login>
//	  200 a Kubernetes Status with status Success; the key is deleted
//
// A login checks the password with users.Store.Authenticate and creates an OwnedAccessKey of
// type Login for the user, recording the user's UID (accesskey.OwnerUIDAnnotation) and with a
// lifetime of Options.LoginTTL. It copies no groups: the edge sends the user's groups as the
// user store has them at each request, so a group taken from the user leaves the key too; the
// plain key is in the response and nowhere else (the store keeps only its digest, and nothing
// here logs it). Clients written for Loft read accessKey, as from Loft's endpoint of the same
// path and body.
//
// Every refusal is a Kubernetes Status, like the rest of the edge: a wrong password, an
// unknown user and a disabled user all get one identical 401, so the endpoint cannot be used
// to learn which names exist. A malformed request gets 400 (an unknown field or a body that is
// not one JSON object), 413 (a body over 64 KiB), 415 (not application/json) or 405 (not
// POST); an unknown path 404; a key or user store that cannot answer 503.
//
// Failed logins are limited per (user name, client address), per client address (see
// clientAddress) and, higher, per user name (see limiter): past a limit the answer is 429 with
// Retry-After, before the password is even checked, so guessing passwords costs an attacker a
// fixed, small number of tries a minute, while a client that keeps failing for a user does not
// lock that user out of other clients. Successful logins are not counted.
//
// Logout deletes only Login keys: a key made another way (kubectl, keystore create-key) is
// refused with 403, since "logging out" of a CI job's key by accident would break the job; its
// owner deletes it with kubectl delete ownedaccesskeys.management.loft.sh <name>.
//
// Handler.Login and Handler.Logout are these endpoints' work without the JSON: the login page
// (keystore/auth/loginpage) signs in and out through them, so a password checked by the page
// meets the same limiter, quota, answers, metrics and log lines.
//
// Responses carry Cache-Control: no-store. Logs name users and keys, never passwords or
// plain keys.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"

	"github.com/keygate-dev/keygate/internal/kubestatus"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Paths the handler serves, after Envoy has stripped /auth.
const (
	LoginPath  = "/password/login"
	LogoutPath = "/logout"
)

// Defaults for zero Options fields.
const (
	// DefaultLoginTTL is how long a login key lives. A password login is interactive: a day
	// covers a working day without asking again, and a key copied out of a laptop's
	// kubeconfig stops working by the next one. Automation should use keys made for it
	// (type User), whose lifetime is chosen per key.
	DefaultLoginTTL = 24 * time.Hour
)

// Default limits of failed logins (see limiter for how they work together).
var (
	// DefaultClientLimit is per (user name, client address): 5 failures in a row, then one
	// every 12 s (5 a minute, refilled in a minute). Tight, since it slows only the client
	// that fails: the user logs in from elsewhere meanwhile.
	DefaultClientLimit = Limit{Burst: 5, Every: 12 * time.Second}
	// DefaultAddressLimit is per client address, over all names: 50, then one every 1.2 s.
	// Higher than per client: many people may share one address (an office behind NAT), and
	// each mistypes now and then.
	DefaultAddressLimit = Limit{Burst: 50, Every: 1200 * time.Millisecond}
	// DefaultUserLimit is per user name, over all addresses: 100, then one every 3 s (20 a
	// minute, 28,800 a day). Twenty times the client burst and four times its rate, so that
	// only five or more addresses failing at full speed together, for fifteen minutes (or
	// twenty at once), lock the user out.
	DefaultUserLimit = Limit{Burst: 100, Every: 3 * time.Second}
)

// MaxBodyBytes bounds a login request body: a user name and a password need a few hundred
// bytes; anything much larger is not a login.
const MaxBodyBytes = 64 << 10

// maxNameAttempts bounds the retries when a generated key name is taken (1 in 14 million).
const maxNameAttempts = 5

// Keys is the access-key store (store.Store in production).
type Keys interface {
	CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q store.Quota) (plain string, stored *v1.OwnedAccessKey, evicted []string, err error)
	Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error)
	DeleteObject(ctx context.Context, name, resourceVersion string) (*v1.OwnedAccessKey, error)
	// Get reads a single sign-on identity's session, the parent of its CLI key.
	Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error)
}

// Users checks passwords (users.Store in production). Authenticate must return an error
// wrapping users.ErrInvalidCredentials for every refusal, and other errors only when it cannot
// decide.
type Users interface {
	Authenticate(ctx context.Context, name, password string) (*users.User, error)
}

// Options configure a Handler. Keys, Users and Limits.Redis are required.
type Options struct {
	Keys  Keys
	Users Users
	// LoginTTL is the lifetime of a login key, a whole number of seconds; 0 means
	// DefaultLoginTTL. Login keys always expire. An operator-wide maximum TTL in extauthz may
	// cut it shorter than the expiresAt the login answers.
	LoginTTL time.Duration
	// MaxLoginKeys bounds the live login keys of one user (0: no bound). A login at the bound
	// deletes the user's oldest login key, in the same step as it makes the new one: refusing
	// would lock out a user whose old keys are on a lost laptop, and whoever holds the password
	// can log in anyway. Deleting the oldest ends the stalest session.
	MaxLoginKeys int
	// ClientLimit, AddressLimit and UserLimit bound failed logins per (user name, client
	// address), per client address and per user name; past one, the answer is 429. A zero
	// Limit means its default. UserLimit must be above ClientLimit (a larger Burst, an Every
	// no longer), so that one client alone cannot lock a user out.
	ClientLimit, AddressLimit, UserLimit Limit
	// CLICodes, when set, redeems the codes POST /oidc/login trades for Login keys (the OIDC
	// provider's CLI client); nil: that endpoint answers 404.
	CLICodes CLICodes
	// Log receives one line per login and logout; nil discards them.
	Log *slog.Logger
	// Registerer, when set, gets the metrics keygate_keystore_logins_total and
	// keygate_keystore_logouts_total.
	Registerer prometheus.Registerer
	// Limits is where failed logins are counted (required): Redis, shared by every replica.
	Limits LimitStore
}

// LoginRequest is the body of POST /password/login, as Loft's clients send it.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResponse is the answer to a successful login. AccessKey is the field Loft's clients
// read; the others say which key it is (to delete it by name) and when it stops working.
type LoginResponse struct {
	AccessKey string `json:"accessKey"`
	Name      string `json:"name"`
	User      string `json:"user"`
	ExpiresAt string `json:"expiresAt"`
}

// Handler serves the login endpoints; see the package comment.
type Handler struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	limiter *limiter
}

// New returns a Handler, or an error naming what is wrong with opts.
func New(opts Options) (*Handler, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if opts.Keys == nil {
		bad("Keys is required")
	}
	if opts.Users == nil {
		bad("Users is required")
	}
	if opts.Limits.Redis == nil {
		bad("Limits.Redis is required")
	}
	switch {
	case opts.LoginTTL == 0:
		opts.LoginTTL = DefaultLoginTTL
	case opts.LoginTTL < time.Second:
		// Under a second would be stored as ttl 0, which means "never expires".
		bad("LoginTTL %v: must be at least 1s", opts.LoginTTL)
	case opts.LoginTTL%time.Second != 0:
		bad("LoginTTL %v: must be a whole number of seconds (spec.ttl is in seconds)", opts.LoginTTL)
	}
	if opts.MaxLoginKeys < 0 {
		bad("MaxLoginKeys %d: must not be negative", opts.MaxLoginKeys)
	}
	problems = append(problems, checkLimits(&opts)...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("auth: invalid options: %s", strings.Join(problems, "; "))
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("auth: register metrics: %w", err)
	}
	return &Handler{
		opts:    opts,
		log:     log,
		metrics: m,
		limiter: newLimiter(opts.Limits, opts.ClientLimit, opts.AddressLimit, opts.UserLimit),
	}, nil
}

// checkLimits fills in the default limits and returns what is wrong with them.
func checkLimits(opts *Options) []string {
	var problems []string
	for _, f := range []struct {
		name string
		v    *Limit
		def  Limit
	}{{"ClientLimit", &opts.ClientLimit, DefaultClientLimit}, {"AddressLimit", &opts.AddressLimit, DefaultAddressLimit}, {"UserLimit", &opts.UserLimit, DefaultUserLimit}} {
		switch {
		case *f.v == Limit{}:
			*f.v = f.def
		case f.v.Burst < 1 || f.v.Every <= 0:
			problems = append(problems, fmt.Sprintf("%s %+v: Burst must be at least 1 and Every positive", f.name, *f.v))
		}
	}
	if c, u := opts.ClientLimit, opts.UserLimit; u.Burst <= c.Burst || u.Every > c.Every {
		// Else one client failing as fast as it is let would empty the user's bucket, and lock
		// the user out from everywhere: the attack these limits exist to stop.
		problems = append(problems, fmt.Sprintf("UserLimit %+v must be above ClientLimit %+v: a larger Burst, an Every no longer", u, c))
	}
	return problems
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer here is about credentials: a login's key above all, but refusals too should
	// not linger in shared caches.
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case LoginPath:
		h.login(w, r)
	case LogoutPath:
		h.logout(w, r)
	case OIDCLoginPath:
		h.oidcLogin(w, r)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			"no such login endpoint: use POST /auth/password/login or POST /auth/logout")
	}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.metrics.logins.WithLabelValues(MethodPassword, LoginBadRequest).Inc()
		methodNotAllowed(w)
		return
	}
	req, code, reason, msg := readLogin(w, r)
	if code != 0 {
		// The parse error is for the client only: it may quote a character of the body.
		h.metrics.logins.WithLabelValues(MethodPassword, LoginBadRequest).Inc()
		writeStatus(w, code, reason, msg)
		return
	}
	l, err := h.Login(r, req.Username, req.Password)
	if err != nil {
		writeLoginError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{AccessKey: l.Plain, Name: l.Key.Name, User: l.User.Name, ExpiresAt: l.ExpiresAt.Format(time.RFC3339)})
}

// writeLoginError answers a refused or failed login with its Status.
func writeLoginError(w http.ResponseWriter, err error) {
	var le *LoginFailure
	if !errors.As(err, &le) { // Login returns only LoginFailures
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "the login failed")
		return
	}
	switch le.Code {
	case http.StatusTooManyRequests:
		tooManyLogins(w, le.RetryAfter)
	case http.StatusBadRequest:
		writeStatus(w, le.Code, metav1.StatusReasonBadRequest, le.Message+`; send {"username": "...", "password": "..."}`)
	case http.StatusUnauthorized:
		writeStatus(w, le.Code, metav1.StatusReasonUnauthorized, le.Message)
	case http.StatusServiceUnavailable:
		writeStatus(w, le.Code, metav1.StatusReasonServiceUnavailable, le.Message)
	default:
		writeStatus(w, le.Code, metav1.StatusReasonInternalError, le.Message)
	}
}

// tooManyLogins answers 429 with when to try again, in Retry-After and in the Status.
func tooManyLogins(w http.ResponseWriter, wait time.Duration) {
	secs := RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s := kubestatus.Failure(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, fmt.Sprintf("too many failed logins; try again in %d seconds", secs))
	s.Details = &metav1.StatusDetails{RetryAfterSeconds: int32(secs)}
	writeJSON(w, http.StatusTooManyRequests, s)
}

// userAttr is the attempted user name for a log line. People type passwords into the user
// field now and then; a user name is a DNS-1123 label, so anything else is logged only by its
// length, and a mistyped password has a fair chance of not being written to the log.
func (h *Handler) userAttr(name string) slog.Attr {
	if validation.IsDNS1123Label(name) == nil {
		return slog.String("user", name)
	}
	return slog.Int("invalidUserLength", len(name))
}

// readLogin reads and checks a login body. code is 0 when req is good, else the answer.
func readLogin(w http.ResponseWriter, r *http.Request) (req LoginRequest, code int, reason metav1.StatusReason, msg string) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return req, http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("the body must be JSON, sent with Content-Type: application/json (got %q)", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return req, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge,
			fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)
	}
	if err != nil {
		return req, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the body could not be read"
	}
	const shape = `; send {"username": "...", "password": "..."}`
	// Strict: names match case-sensitively, and unknown or repeated fields are refused, so a
	// misspelt field is an error rather than an empty password.
	strict, err := sigsjson.UnmarshalStrict(body, &req)
	if err != nil {
		return req, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the body is not a JSON login request: " + err.Error() + shape
	}
	if len(strict) > 0 {
		return req, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the body is not a JSON login request: " + errors.Join(strict...).Error() + shape
	}
	// Empty fields are Login's to refuse, for the login page's form as for this body.
	return req, 0, "", ""
}

// issue creates a login key for u and returns its plain key, the stored object and the names
// of the login keys of u it deleted to stay within MaxLoginKeys.
func (h *Handler) issue(ctx context.Context, u *users.User, method string) (string, *v1.OwnedAccessKey, []string, error) {
	made := "Made by a password login (POST /auth/password/login or the login page /auth/login)"
	if method == MethodOIDC {
		made = "Made by a browser login of the keygate CLI (POST /auth/oidc/login)"
	}
	for range maxNameAttempts {
		k := &v1.OwnedAccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: loginKeyName(u.Name)},
			Spec: v1.OwnedAccessKeySpec{
				DisplayName: "login of " + u.Name,
				Description: made + "; ends with a logout (POST /auth/logout, the page's sign-out) or when its ttl runs out.",
				User:        u.Name,
				TTL:         int64(h.opts.LoginTTL / time.Second),
				Type:        v1.AccessKeyTypeLogin,
			},
		}
		// The key is this user's, not a later user's of the same name (accesskey.CheckOwner).
		accesskey.SetOwnerUID(k, u.UID)
		q := store.PerOwner(k, h.opts.MaxLoginKeys, time.Now())
		q.EvictOldest = true
		plain, stored, evicted, err := h.opts.Keys.CreateWithinQuota(ctx, k, q)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue // the name (or, never in practice, the key material) is taken: draw again
		}
		return plain, stored, evicted, err
	}
	return "", nil, nil, fmt.Errorf("no free key name for user %s after %d attempts", u.Name, maxNameAttempts)
}

// nameAlphabet is Kubernetes' generateName alphabet: no vowels, so no words, and no 0/1/3
// that look like letters.
const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// maxStemLength keeps "login-<stem>-<5>" within 63 characters, a DNS-1123 label, which fits
// wherever a name may go (labels, other systems' names), not only a subdomain.
const maxStemLength = 63 - len("login-") - len("-xxxxx")

// loginKeyName is login-<user>-<5 random characters>, a valid object name for any user name.
// The random part is not a secret (names are listed by kubectl), so math/rand does.
func loginKeyName(user string) string {
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = nameAlphabet[rand.IntN(len(nameAlphabet))]
	}
	return "login-" + nameStem(user) + "-" + string(suffix)
}

// nameStem makes user fit a DNS-1123 label: lowercase, anything but [a-z0-9] becomes '-', runs
// of '-' become one, none at either end. Users in users.Store already are labels; the rest is
// for users that may come from elsewhere (SSO) with dots, capitals or '@'.
func nameStem(user string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(user) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= maxStemLength {
			break
		}
	}
	stem := strings.TrimRight(b.String(), "-")
	if stem == "" {
		return "user"
	}
	return stem
}

// maxLogoutAttempts bounds the retries when the key changes between its look-up and its
// deletion.
const maxLogoutAttempts = 3

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.metrics.logouts.WithLabelValues(LogoutBadRequest).Inc()
		methodNotAllowed(w)
		return
	}
	plain, err := bearer(r.Header.Values("Authorization"))
	if err != nil {
		h.metrics.logouts.WithLabelValues(LogoutUnauthenticated).Inc()
		unauthenticated(err.Error()).write(w)
		return
	}
	k, err := h.Logout(r, plain)
	if f := (*LogoutFailure)(nil); errors.As(err, &f) {
		f.write(w)
		return
	}
	writeJSON(w, http.StatusOK, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess,
		Message:  fmt.Sprintf("logged out: access key %q deleted", k.Name),
		Details:  &metav1.StatusDetails{Name: k.Name, Group: v1.GroupName, Kind: "ownedaccesskeys"},
		Code:     http.StatusOK,
	})
}

// Logout deletes the Login key plain and returns it: the one path of every logout, the JSON
// endpoint's and the login page's sign-out, so both count and log alike. r gives the client
// address for the log. Every error is a *LogoutFailure.
func (h *Handler) Logout(r *http.Request, plain string) (*v1.OwnedAccessKey, error) {
	addr, _ := clientAddress(r)
	k, refused := h.deleteLoginKey(r.Context(), plain, addr)
	if refused != nil {
		h.metrics.logouts.WithLabelValues(refused.result).Inc()
		return nil, refused
	}
	h.metrics.logouts.WithLabelValues(LogoutOK).Inc()
	h.log.Info("logout", "key", k.Name, "user", k.Spec.User, "client", addr)
	return k, nil
}

// LogoutFailure is a refused or failed logout: the result it is counted under, and the
// Status answered (401 no such key or disabled, 403 not a Login key, 503 the store failed).
type LogoutFailure struct {
	result  string
	Code    int
	reason  metav1.StatusReason
	Message string
}

func (f *LogoutFailure) Error() string { return f.Message }

func (f *LogoutFailure) write(w http.ResponseWriter) {
	if f.Code == http.StatusUnauthorized {
		unauthorized(w, f.Message)
		return
	}
	writeStatus(w, f.Code, f.reason, f.Message)
}

func unauthenticated(msg string) *LogoutFailure {
	return &LogoutFailure{LogoutUnauthenticated, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, msg}
}

// deleteLoginKey deletes the login key plain, and returns it.
func (h *Handler) deleteLoginKey(ctx context.Context, plain, addr string) (*v1.OwnedAccessKey, *LogoutFailure) {
	for attempt := 1; ; attempt++ {
		k, refused := h.loginKey(ctx, plain, addr)
		if refused != nil {
			return nil, refused
		}
		// The resourceVersion makes sure that what is deleted is the key just judged, not one
		// an administrator changed meanwhile (to another type, or disabled).
		_, err := h.opts.Keys.DeleteObject(ctx, k.Name, k.ResourceVersion)
		switch {
		case errors.Is(err, store.ErrConflict) && attempt < maxLogoutAttempts:
			continue // judge the key again as it is now
		case errors.Is(err, store.ErrNotFound):
			// Deleted meanwhile (a second logout, an administrator): the client's aim is met.
		case err != nil:
			h.log.Error("logout failed: cannot delete the access key", "key", k.Name, "user", k.Spec.User, "client", addr, "error", err)
			return nil, &LogoutFailure{LogoutError, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "the access key cannot be deleted right now; try again later"}
		}
		return k, nil
	}
}

// loginKey looks the key up and checks that a logout may delete it: a login key, not disabled.
func (h *Handler) loginKey(ctx context.Context, plain, addr string) (*v1.OwnedAccessKey, *LogoutFailure) {
	k, err := h.opts.Keys.Lookup(ctx, plain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.log.Info("logout refused: unknown access key", "client", addr)
		return nil, unauthenticated("invalid access key")
	case err != nil:
		h.log.Error("logout failed: key store unavailable", "client", addr, "error", err)
		return nil, &LogoutFailure{LogoutError, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "access keys cannot be checked right now; try again later"}
	}
	if k.Spec.Type != v1.AccessKeyTypeLogin {
		h.log.Info("logout refused: not a login key", "key", k.Name, "type", string(k.Spec.Type), "user", k.Spec.User, "client", addr)
		return nil, &LogoutFailure{LogoutForbidden, http.StatusForbidden, metav1.StatusReasonForbidden, fmt.Sprintf(
			"access key %q is not a login key (its type is %q): only keys made by POST /auth/password/login are logged out this way; "+
				"delete other keys with: kubectl delete ownedaccesskeys.management.loft.sh %s", k.Name, k.Spec.Type, k.Name)}
	}
	if k.Spec.Disabled {
		// An administrator disabled it, perhaps to look into its use: it stays for them to
		// delete, and its holder is refused as everywhere else on the edge. An expired key,
		// by contrast, is deleted: it is of no use to anyone.
		h.log.Info("logout refused: disabled access key", "key", k.Name, "user", k.Spec.User, "client", addr)
		return nil, unauthenticated(fmt.Sprintf("access key %q is disabled", k.Name))
	}
	return k, nil
}

// bearer returns the access key of the Authorization header, read as extauthz reads it. Two
// headers are not one key.
func bearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return accesskey.Bearer("")
	case 1:
		return accesskey.Bearer(values[0])
	}
	return "", accesskey.ErrMalformed
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="keygate"`)
	writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, msg)
}

func methodNotAllowed(w http.ResponseWriter) {
	w.Header().Set("Allow", http.MethodPost)
	writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "use POST")
}

// writeStatus answers with a failed Kubernetes Status, which kubectl and client-go print well.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	writeJSON(w, code, kubestatus.Failure(code, reason, msg))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // the types here always marshal
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
