// Package sso is single sign-on through external OpenID Connect identity providers: the
// relying-party side (go-oidc and x/oauth2) of the connectors declared in keystore's
// configuration (auth.connectors). Envoy strips /auth, so the handler sees:
//
//	GET /<connector>/login[?authRequestID=ID]   redirect to the IdP (state, nonce, PKCE S256)
//	GET /<connector>/callback?code=..&state=..  the IdP's answer: a Login key and a session
//
// A login makes an OwnedAccessKey of type Login for the IdP's user: spec.user the mapped name
// (never a user of the user store: see identity.go), spec.groups the IdP's groups it may grant,
// spec.identity the IdP's identity with connectorData, the IdP's refresh token sealed
// (keystore/sealed) for this key alone, and spec.identityRefresh. The browser gets the key as its
// session (keystore/auth/session). Refresher keeps the groups current from the IdP and disables
// a key the IdP no longer vouches for.
//
// Every refusal is a small HTML page saying why; nothing is created.
package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Keys is the access-key store (store.Store in production).
type Keys interface {
	CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q store.Quota) (plain string, stored *v1.OwnedAccessKey, evicted []string, err error)
	Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error)
	List(ctx context.Context) ([]*v1.OwnedAccessKey, error)
	Update(ctx context.Context, k *v1.OwnedAccessKey) (*v1.OwnedAccessKey, error)
}

// Users says whether the user store has a user of a name (users.Store.Exists in production):
// an IdP's user of that name is refused.
type Users func(ctx context.Context, name string) (bool, error)

// Options configure a Handler. Keys, Users, Redis, Box and ExternalURL are required.
type Options struct {
	Keys  Keys
	Users Users
	// Redis holds the pending logins (state, nonce, PKCE verifier) and the refresh locks.
	Redis redis.UniversalClient
	// Box seals the IdPs' refresh tokens (spec.identity.connectorData).
	Box *sealed.Box
	// ExternalURL is the edge's URL as browsers see it: callbacks are
	// ExternalURL/auth/<connector>/callback.
	ExternalURL string
	// AdminGroup is keystore's --admin-group: no IdP grants it unless its connector lists it in
	// privilegedGroups.
	AdminGroup string
	// AuthRequests finishes the OIDC provider's pending requests; nil: there are none.
	AuthRequests session.AuthRequests
	// LoginTTL is the lifetime of a login key; 0: auth.DefaultLoginTTL.
	LoginTTL time.Duration
	// MaxLoginKeys bounds the live login keys of one user, as for password logins.
	MaxLoginKeys int
	// StartLimit bounds the logins one client address may start (each leaves a pending record
	// in Redis for StateTTL); zero: auth.DefaultStartLimit.
	StartLimit auth.Limit
	// StartLimitPrefix begins the keys of the start buckets in Redis (shared by every replica);
	// "": auth.DefaultLimitPrefix. It must hold a hash tag ({...}).
	StartLimitPrefix string
	Log              *slog.Logger
	Registerer       prometheus.Registerer
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Handler serves the connectors' login and callback endpoints.
type Handler struct {
	opts       Options
	log        *slog.Logger
	metrics    *metrics
	connectors atomic.Pointer[map[string]*connector]
	starts     *auth.AddressLimiter
}

// New returns a Handler serving connectors.
func New(opts Options, connectors []config.Connector) (*Handler, error) {
	var missing []string
	for name, unset := range map[string]bool{"Keys": opts.Keys == nil, "Users": opts.Users == nil, "Redis": opts.Redis == nil, "Box": opts.Box == nil, "ExternalURL": opts.ExternalURL == ""} {
		if unset {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("sso: %s required", strings.Join(missing, ", "))
	}
	opts.ExternalURL = strings.TrimRight(opts.ExternalURL, "/")
	// The start limits count on Redis's clock unless a test set one.
	starts := auth.NewAddressLimiter(auth.LimitStore{Redis: opts.Redis, Now: opts.Now, Prefix: opts.StartLimitPrefix}, opts.StartLimit)
	if opts.LoginTTL == 0 {
		opts.LoginTTL = auth.DefaultLoginTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sso: register metrics: %w", err)
	}
	h := &Handler{opts: opts, log: opts.Log, metrics: m, starts: starts}
	if err := h.SetConnectors(connectors); err != nil {
		return nil, err
	}
	return h, nil
}

// SetConnectors puts a new set of connectors in force (a reloaded configuration). A login
// started with a connector that is gone fails at its callback.
func (h *Handler) SetConnectors(cs []config.Connector) error {
	m := map[string]*connector{}
	for _, c := range cs {
		conn, err := newConnector(c, h.opts.ExternalURL)
		if err != nil {
			return fmt.Errorf("sso: connector %s: %w", c.ID, err)
		}
		m[c.ID] = conn
		h.metrics.init(c.ID)
	}
	h.connectors.Store(&m)
	return nil
}

func (h *Handler) connector(id string) *connector { return (*h.connectors.Load())[id] }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	id, action, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	c := h.connector(id)
	if !ok || c == nil || (action != "login" && action != "callback") {
		page(w, http.StatusNotFound, "Not found", "There is no such sign-in page.")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		page(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	if action == "login" {
		h.login(w, r, c)
		return
	}
	h.callback(w, r, c)
}

// rules are the mapping rules of connector c.
func (h *Handler) rules(c *connector) rules {
	return rules{connector: c.id, o: c.o, adminGroup: h.opts.AdminGroup}
}

// isRefused says whether err is a rule's refusal (a 403), not a failure.
func isRefused(err error) bool {
	var r *refused
	return errors.As(err, &r)
}

// StoreUsers is Users of the user store: the same look-up extauthz makes of a key's spec.user.
func StoreUsers(s *users.Store) Users {
	return func(ctx context.Context, name string) (bool, error) {
		_, err := s.Get(ctx, name)
		if errors.Is(err, users.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}
