package oidc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	rdb   *redis.Client
	keys  *store.Store
	userS *users.Store
	box   *sealed.Box
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/oidc", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
		userS = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
		var err error
		if box, err = sealed.Parse(sealed.Generate()); err != nil {
			panic(err)
		}
	})
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
var uniqueN atomic.Int64

func unique(name string) string { return fmt.Sprintf("%s-%s-%d", name, runID, uniqueN.Add(1)) }

// The clients every test provider has.
const (
	publicClient       = "cli"
	confidentialClient = "web"
	clientSecret       = "a-client-secret-of-enough-length"
	loopbackRedirect   = "http://127.0.0.1/callback"
	webRedirect        = "https://app.example.com/callback"
)

func clients(t *testing.T) *config.OIDC {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(clientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return &config.OIDC{Clients: []config.Client{
		{Name: "The CLI", ClientID: publicClient, RedirectURIs: []string{loopbackRedirect}},
		{Name: "The web app", ClientID: confidentialClient, ClientSecretHash: string(hash), RedirectURIs: []string{webRedirect},
			PostLogoutRedirectURIs: []string{"https://app.example.com/bye"}},
	}}
}

// env is a provider served over TLS as the edge serves it (under /oidc), and a relying party.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	p        *oidc.Provider
	reg      *prometheus.Registry
	ctx      context.Context // carries the TLS client for go-oidc and oauth2
	http     *http.Client    // does not follow redirects
	rp       *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
}

func newEnv(t *testing.T, tune func(*oidc.Options)) *env {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*h.Load()).ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, reg: prometheus.NewRegistry()}
	cs := clients(t)
	opts := oidc.Options{
		ExternalURL: srv.URL, Redis: rdb, Box: box, Keys: keys, Users: userS,
		Clients: func() *config.OIDC { return cs }, MaxRefreshTokens: 20, Registerer: e.reg,
	}
	if tune != nil {
		tune(&opts)
	}
	p, err := oidc.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	// Envoy strips /oidc before forwarding; the test server does the same.
	var edge http.Handler = http.StripPrefix("/oidc", p)
	h.Store(&edge)
	e.http = srv.Client()
	e.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.ctx = gooidc.ClientContext(context.Background(), srv.Client())
	if e.rp, err = gooidc.NewProvider(e.ctx, p.Issuer()); err != nil {
		t.Fatal(err)
	}
	e.verifier = e.rp.Verifier(&gooidc.Config{ClientID: publicClient})
	return e
}

// user is a user of the store and their session (a Login key, as the login page makes).
type user struct {
	name string
	sess *session.Session
}

func (e *env) newUser(groups ...string) *user {
	e.t.Helper()
	name := unique("alice")
	ctx := context.Background()
	if err := userS.Create(ctx, users.User{Name: name, DisplayName: "Alice Example", Email: name + "@example.com", Groups: groups}, "correct horse battery"); err != nil {
		e.t.Fatal(err)
	}
	u, err := userS.Get(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "login-" + name}, Spec: v1.OwnedAccessKeySpec{User: name, Type: v1.AccessKeyTypeLogin, TTL: 3600}}
	accesskey.SetOwnerUID(k, u.UID)
	_, stored, err := keys.CreateObject(ctx, k)
	if err != nil {
		e.t.Fatal(err)
	}
	return &user{name: name, sess: &session.Session{User: name, Key: stored}}
}

// rp is a relying party's settings for one flow.
type rp struct {
	client, secret, redirect string
	scopes                   []string
}

func (e *env) publicRP() rp {
	return rp{client: publicClient, redirect: "http://127.0.0.1:43123/callback", scopes: []string{gooidc.ScopeOpenID, "profile", "email", "groups", gooidc.ScopeOfflineAccess}}
}

func (e *env) confidentialRP() rp {
	return rp{client: confidentialClient, secret: clientSecret, redirect: webRedirect, scopes: []string{gooidc.ScopeOpenID, "profile", "groups", gooidc.ScopeOfflineAccess}}
}

func (e *env) oauth2(r rp) *oauth2.Config {
	return &oauth2.Config{ClientID: r.client, ClientSecret: r.secret, RedirectURL: r.redirect, Endpoint: e.rp.Endpoint(), Scopes: r.scopes}
}

// authorize runs the browser's part: the authorization request, the login page's Complete
// for u, the callback. It returns where the browser is sent last (the client's redirect URI
// with code and state, or an error).
func (e *env) authorize(u *user, authURL string) *url.URL {
	e.t.Helper()
	loc := e.follow(authURL)
	if !strings.HasPrefix(loc.String(), e.srv.URL+"/auth/login?") {
		return loc // an error sent to the client
	}
	id := loc.Query().Get("authRequestID")
	callback, err := e.p.Complete(context.Background(), id, u.sess)
	if err != nil {
		e.t.Fatalf("Complete: %v", err)
	}
	return e.follow(callback)
}

// follow GETs u and returns its redirect.
func (e *env) follow(u string) *url.URL {
	e.t.Helper()
	resp, err := e.http.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("GET %s: %d %s, want a redirect", u, resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return loc
}

// login runs the whole code flow with PKCE for u and returns the tokens.
func (e *env) login(u *user, r rp) *oauth2.Token {
	e.t.Helper()
	cfg := e.oauth2(r)
	verifier := oauth2.GenerateVerifier()
	loc := e.authorize(u, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n0nce")))
	if loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		e.t.Fatalf("callback %s: want a code and the state", loc)
	}
	tok, err := cfg.Exchange(e.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// refresh uses the refresh token of tok.
func (e *env) refresh(r rp, refreshToken string) (*oauth2.Token, error) {
	return e.oauth2(r).TokenSource(e.ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
}

// claims are the ID token claims the tests read.
type claims struct {
	Sub               string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Name              string   `json:"name"`
	Email             string   `json:"email"`
	Groups            []string `json:"groups"`
	Nonce             string   `json:"nonce"`
	Azp               string   `json:"azp"`
	AtHash            string   `json:"at_hash"`
	AuthTime          int64    `json:"auth_time"`
}

// idToken verifies the ID token of tok with go-oidc (the provider's JWKS) and returns it.
func (e *env) idToken(tok *oauth2.Token, clientID string) (*gooidc.IDToken, claims) {
	e.t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := e.rp.Verifier(&gooidc.Config{ClientID: clientID}).Verify(e.ctx, raw)
	if err != nil {
		e.t.Fatalf("verify ID token: %v", err)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		e.t.Fatal(err)
	}
	return idt, c
}

// refreshKeys are the user's OIDC refresh token keys.
func refreshKeys(t *testing.T, name string) []*v1.OwnedAccessKey {
	t.Helper()
	all, err := keys.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1.OwnedAccessKey
	for _, k := range all {
		if k.Spec.User == name && k.Spec.Type == v1.AccessKeyTypeOIDCRefreshToken {
			out = append(out, k)
		}
	}
	return out
}

// oauthError is the OAuth error code of a failed token request.
func oauthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	if err == nil {
		return ""
	}
	return "not an OAuth error: " + err.Error()
}

func oauth2S256() oauth2.AuthCodeOption {
	return oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
}

// retrieveStatus is the HTTP status of a failed token request.
func retrieveStatus(err error) int {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}
