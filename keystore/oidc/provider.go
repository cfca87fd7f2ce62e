// Package oidc is keystore's OpenID provider, /oidc/ on the edge: other applications of the
// platform (Argo CD, Grafana, a kube-apiserver) sign their users in with the platform's
// identity. It is github.com/zitadel/oidc's op package (a certified OpenID provider library)
// over keystore's Redis:
//
//   - the issuer is <external URL>/oidc; Envoy strips /oidc, so the handler serves the root of
//     its own listener while discovery names the edge's URLs;
//   - the authorization code flow only, with PKCE (S256; plain is refused); a public client
//     (no secret) must use it, a confidential one may, and then it is enforced;
//   - the authorize step sends the browser to the login page (<external URL>/auth/login), which
//     finishes the request with Complete (session.AuthRequests);
//   - refresh tokens are OwnedAccessKeys of type OIDCRefreshToken (refresh.go); access and ID
//     tokens are RS256 JWTs signed with keys kept sealed in Redis and rotated (keys.go);
//   - claims are read at every token: a disabled or deleted user gets none, and groups follow
//     the user store (identity.go).
package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Defaults of zero Options fields.
const (
	// DefaultAccessTokenTTL and DefaultIDTokenTTL are short: a JWT cannot be recalled, so its
	// life bounds how long a disabled user keeps access through one.
	DefaultAccessTokenTTL = 10 * time.Minute
	DefaultIDTokenTTL     = 10 * time.Minute
	// DefaultRefreshTokenTTL is a working week: a refresh token is checked against the user at
	// every use, and each use replaces it with one living this long again.
	DefaultRefreshTokenTTL = 7 * 24 * time.Hour
	// DefaultKeyRotation: a new signing key every week.
	DefaultKeyRotation = 7 * 24 * time.Hour
	// DefaultAuthRequestTTL is how long a user has to sign in.
	DefaultAuthRequestTTL = 10 * time.Minute
	// DefaultCodeTTL: a code is exchanged at once by its client; RFC 6749 §4.1.2 says at most
	// ten minutes.
	DefaultCodeTTL = time.Minute
	// keyReload is how often a replica reads the signing keys again; a retired key stays
	// published this much longer, for tokens a replica signed before it noticed.
	keyReload = 30 * time.Second
)

// Keys is the access-key store (store.Store).
type Keys interface {
	CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q store.Quota) (string, *v1.OwnedAccessKey, []string, error)
	Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error)
	Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error)
	List(ctx context.Context) ([]*v1.OwnedAccessKey, error)
	DeleteObject(ctx context.Context, name, resourceVersion string) (*v1.OwnedAccessKey, error)
}

// Users is the user store (users.Store).
type Users interface {
	Get(ctx context.Context, name string) (*users.User, error)
}

// Options configure a Provider. ExternalURL, Redis, Box, Keys, Users and Clients are required.
type Options struct {
	// ExternalURL is the edge's public URL (https://edge.example.com): the issuer is it plus
	// /oidc, the login page it plus /auth/login.
	ExternalURL string
	Redis       redis.UniversalClient
	// Box seals the private signing keys in Redis.
	Box   *sealed.Box
	Keys  Keys
	Users Users
	// Clients returns the configuration in force (config.Watcher.Current().OIDC).
	Clients func() *config.OIDC
	// Lifetimes; zero means the default.
	AccessTokenTTL, IDTokenTTL, RefreshTokenTTL, KeyRotation time.Duration
	AuthRequestTTL, CodeTTL                                  time.Duration
	// MaxRefreshTokens bounds the live refresh tokens of one user (0: none); past it the
	// oldest is deleted.
	MaxRefreshTokens int
	Log              *slog.Logger
	Registerer       prometheus.Registerer
	Now              func() time.Time
}

// Provider is the OpenID provider; it is an http.Handler and a session.AuthRequests.
type Provider struct {
	opts     Options
	issuer   string
	loginURL string
	log      *slog.Logger
	op       *op.Provider
	handler  http.Handler
	reqs     *requests
	ring     *keyRing
	metrics  *metrics
}

var _ session.AuthRequests = (*Provider)(nil)

// New returns a Provider, or an error naming what is wrong with opts.
func New(opts Options) (*Provider, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("oidc: register metrics: %w", err)
	}
	base := strings.TrimSuffix(opts.ExternalURL, "/")
	p := &Provider{opts: opts, issuer: base + "/oidc", loginURL: base + "/auth/login", log: opts.Log, metrics: m}
	p.reqs = &requests{rdb: opts.Redis, ttl: opts.AuthRequestTTL, codeTTL: opts.CodeTTL, keepFor: max(opts.AccessTokenTTL, opts.CodeTTL), now: opts.Now}
	p.ring = &keyRing{
		rdb: opts.Redis, box: opts.Box, every: opts.KeyRotation, reload: keyReload, now: opts.Now,
		// A retired key may have signed a token a moment ago, on a replica that had not yet
		// noticed the rotation: it stays published for the longest token life after that.
		publishFor: max(opts.AccessTokenTTL, opts.IDTokenTTL) + 2*keyReload,
		onRotate:   m.rotations.Inc,
	}
	p.op, err = op.NewProvider(&op.Config{
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedScopes:          supportedScopes,
		SupportedClaims:          supportedClaims,
		DefaultLogoutRedirectURI: p.issuer + loggedOutPath,
	}, &storage{p}, op.StaticIssuer(p.issuer), op.WithCrypto(codes{}))
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	p.handler = p.serve(p.op)
	return p, nil
}

func (o *Options) check() error {
	var problems []string
	if u, err := url.Parse(o.ExternalURL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		problems = append(problems, fmt.Sprintf("ExternalURL %q: want https://host[:port], the edge's public URL", o.ExternalURL))
	}
	if o.Redis == nil || o.Box == nil || o.Keys == nil || o.Users == nil || o.Clients == nil {
		problems = append(problems, "Redis, Box, Keys, Users and Clients are required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"AccessTokenTTL", &o.AccessTokenTTL, DefaultAccessTokenTTL}, {"IDTokenTTL", &o.IDTokenTTL, DefaultIDTokenTTL},
		{"RefreshTokenTTL", &o.RefreshTokenTTL, DefaultRefreshTokenTTL}, {"KeyRotation", &o.KeyRotation, DefaultKeyRotation},
		{"AuthRequestTTL", &o.AuthRequestTTL, DefaultAuthRequestTTL}, {"CodeTTL", &o.CodeTTL, DefaultCodeTTL}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < time.Second:
			problems = append(problems, fmt.Sprintf("%s %v: want at least 1s", d.name, *d.v))
		}
	}
	if o.MaxRefreshTokens < 0 {
		problems = append(problems, "MaxRefreshTokens must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("oidc: invalid options: %s", strings.Join(problems, "; "))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Issuer is the issuer URL, <external URL>/oidc.
func (p *Provider) Issuer() string { return p.issuer }

// ServeHTTP serves the provider at the root: Envoy has stripped /oidc.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// Run rotates the signing key when it is due and keeps the published-keys gauge, until ctx
// ends. Tokens work without it (a key due is rotated at the next signing); it makes rotation
// happen on time on a quiet provider.
func (p *Provider) Run(ctx context.Context) {
	t := time.NewTicker(keyReload)
	defer t.Stop()
	for {
		if _, all, err := p.ring.keys(ctx); err != nil {
			p.log.Error("OIDC signing keys unavailable", "error", err)
		} else {
			p.metrics.published.Set(float64(len(all)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RotateKeys makes a new signing key now; the old one stays published until its tokens expire.
func (p *Provider) RotateKeys(ctx context.Context) error { return p.ring.rotateNow(ctx) }

// Describe implements session.AuthRequests.
func (p *Provider) Describe(ctx context.Context, id string) (session.Pending, error) {
	a, err := p.pending(ctx, id)
	if err != nil {
		return session.Pending{}, err
	}
	c := p.configClient(a.Grant.ClientID)
	if c == nil {
		return session.Pending{}, session.ErrUnknownRequest
	}
	return session.Pending{ClientName: c.Name, ClientID: c.ClientID, Scopes: a.Grant.Scopes}, nil
}

// Complete implements session.AuthRequests: the request is now s's, if s's user may have
// tokens, and the browser goes on to the provider's callback, which redirects to the client
// with a code.
func (p *Provider) Complete(ctx context.Context, id string, s *session.Session) (string, error) {
	if s == nil || s.Key == nil || s.User == "" {
		return "", errors.New("oidc: Complete needs a session with its Login key")
	}
	if _, err := p.pending(ctx, id); err != nil {
		return "", err
	}
	g := grant{User: s.User, OwnerUID: accesskey.OwnerUID(s.Key), Parent: s.Key.Name, AuthTime: p.opts.Now().UTC()}
	if _, err := p.resolve(ctx, g); err != nil {
		return "", fmt.Errorf("oidc: %s may not sign in: %w", s.User, err)
	}
	_, err := p.reqs.update(ctx, id, 0, func(a *authRequest) error {
		if a.Completed {
			return session.ErrUnknownRequest // finished already: a second sign-in is not another
		}
		a.Completed = true
		a.Grant.User, a.Grant.OwnerUID, a.Grant.Parent, a.Grant.AuthTime = g.User, g.OwnerUID, g.Parent, g.AuthTime
		return nil
	})
	if errors.Is(err, errUnknown) {
		return "", session.ErrUnknownRequest
	}
	if err != nil {
		return "", err
	}
	return p.issuer + "/authorize/callback?id=" + url.QueryEscape(id), nil
}

// pending is the request id while it waits for its user.
func (p *Provider) pending(ctx context.Context, id string) (*authRequest, error) {
	a, err := p.reqs.get(ctx, id)
	if errors.Is(err, errUnknown) || (err == nil && a.Completed) {
		return nil, session.ErrUnknownRequest
	}
	return a, err
}

// codes makes authorization codes: 256 random bits, unrelated to the request (op's default
// encrypts the request id). It decrypts nothing, so op never takes an access token for one of
// its own opaque tokens: every access token here is a JWT.
type codes struct{}

func (codes) Encrypt(string) (string, error) { return randomID(), nil }
func (codes) Decrypt(string) (string, error) { return "", errors.New("no opaque tokens") }

// supportedClaims are the claims the provider may put in tokens.
var supportedClaims = []string{
	"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "at_hash", "c_hash", "azp",
	"preferred_username", "name", "email", "email_verified", "groups",
}
