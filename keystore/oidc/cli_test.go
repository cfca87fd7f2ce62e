package oidc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/internal/metricstest"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/users"
)

const cliRedirect = "http://127.0.0.1:40123/callback"

// cliCode runs the browser's part for u as the built-in CLI client and returns the code and
// its verifier.
func (e *env) cliCode(u *user, client, redirect string) (code, verifier string) {
	e.t.Helper()
	cfg := e.oauth2(rp{client: client, redirect: redirect, scopes: []string{"openid", "profile"}})
	verifier = oauth2.GenerateVerifier()
	loc := e.authorize(u, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)))
	if code = loc.Query().Get("code"); code == "" || loc.Query().Get("state") != "st4te" {
		e.t.Fatalf("callback %s: want a code and the state", loc)
	}
	return code, verifier
}

// cliLogin posts body to the login endpoint h serves.
func cliLogin(h *auth.Handler, body auth.OIDCLoginRequest) *httptest.ResponseRecorder {
	data, _ := json.Marshal(body)
	r := httptest.NewRequest(http.MethodPost, auth.OIDCLoginPath, bytes.NewReader(data))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestCLILogin: POST /auth/oidc/login trades a code of the built-in CLI client, once, with its
// verifier and redirect URI, for a Login key of a user still allowed in; nothing else.
func TestCLILogin(t *testing.T) {
	e := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	h, err := auth.New(auth.Options{Keys: keys, Users: userS, Limits: auth.LimitStore{Redis: rdb}, CLICodes: e.p.CLICodes(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cliLoginCases(t, e, h) {
		t.Run(tc.name, func(t *testing.T) {
			u := e.newUser()
			w := cliLogin(h, tc.login(u))
			if w.Code != tc.want {
				t.Fatalf("status %d %s, want %d", w.Code, w.Body, tc.want)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", w.Header().Get("Cache-Control"))
			}
			if tc.want == http.StatusOK {
				checkCLIKey(t, w, u.name)
			}
		})
	}
	ok := testutil.ToFloat64(counterOf(t, reg, "oidc", "ok"))
	invalid := testutil.ToFloat64(counterOf(t, reg, "oidc", "invalid"))
	if ok != 2 || invalid != 6 { // "code used again" logs in once first
		t.Errorf("logins_total{method=oidc}: ok %v, invalid %v; want 2 and 6", ok, invalid)
	}
	metricstest.Lint(t, reg)
}

// cliLoginCase is a request to the login endpoint and the status it should get.
type cliLoginCase struct {
	name string
	// login returns the request to send, after whatever it does to the user or the code.
	login func(u *user) auth.OIDCLoginRequest
	want  int
}

func cliLoginCases(t *testing.T, e *env, h *auth.Handler) []cliLoginCase {
	ctx := context.Background()
	return []cliLoginCase{
		{"ok", func(u *user) auth.OIDCLoginRequest {
			code, v := e.cliCode(u, config.CLIClientID, cliRedirect)
			return auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}
		}, http.StatusOK},
		{"another client's code", func(u *user) auth.OIDCLoginRequest {
			code, v := e.cliCode(u, publicClient, cliRedirect)
			return auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}
		}, http.StatusUnauthorized},
		{"code used again", func(u *user) auth.OIDCLoginRequest {
			code, v := e.cliCode(u, config.CLIClientID, cliRedirect)
			req := auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}
			if w := cliLogin(h, req); w.Code != http.StatusOK {
				t.Fatalf("first use: %d %s", w.Code, w.Body)
			}
			return req
		}, http.StatusUnauthorized},
		{"wrong verifier", func(u *user) auth.OIDCLoginRequest {
			code, _ := e.cliCode(u, config.CLIClientID, cliRedirect)
			return auth.OIDCLoginRequest{Code: code, CodeVerifier: oauth2.GenerateVerifier(), RedirectURI: cliRedirect}
		}, http.StatusUnauthorized},
		{"another redirect URI", func(u *user) auth.OIDCLoginRequest {
			code, v := e.cliCode(u, config.CLIClientID, cliRedirect)
			return auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: "http://127.0.0.1:40124/callback"}
		}, http.StatusUnauthorized},
		{"user disabled after signing in", func(u *user) auth.OIDCLoginRequest {
			code, v := e.cliCode(u, config.CLIClientID, cliRedirect)
			if _, err := userS.Update(ctx, u.name, func(x *users.User) error { x.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			return auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}
		}, http.StatusUnauthorized},
		{"no code", func(*user) auth.OIDCLoginRequest {
			return auth.OIDCLoginRequest{CodeVerifier: oauth2.GenerateVerifier(), RedirectURI: cliRedirect}
		}, http.StatusUnauthorized},
	}
}

// checkCLIKey checks that the answer holds a working Login key of user.
func checkCLIKey(t *testing.T, w *httptest.ResponseRecorder, user string) {
	t.Helper()
	var resp auth.LoginResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	k, err := keys.Lookup(context.Background(), resp.AccessKey)
	if err != nil {
		t.Fatalf("the answered key: %v", err)
	}
	if k.Spec.Type != v1.AccessKeyTypeLogin || k.Spec.User != user || k.Name != resp.Name || resp.User != user || resp.ExpiresAt == "" {
		t.Errorf("key %s type %s user %s; answer %+v", k.Name, k.Spec.Type, k.Spec.User, resp)
	}
}

// counterOf is keygate_keystore_logins_total{method, result} of reg.
func counterOf(t *testing.T, reg *prometheus.Registry, method, result string) prometheus.Counter {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "keygate_keystore_logins_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["method"] == method && l["result"] == result {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

// TestCLICodesOnlyAtTheLoginEndpoint: the token endpoint refuses the CLI client's code, so
// it never becomes JWTs or a refresh token; and that another client's code refused by the
// login endpoint is still its own client's to redeem.
func TestCLICodesOnlyAtTheLoginEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	h, err := auth.New(auth.Options{Keys: keys, Users: userS, Limits: auth.LimitStore{Redis: rdb}, CLICodes: e.p.CLICodes()})
	if err != nil {
		t.Fatal(err)
	}
	u := e.newUser()
	code, v := e.cliCode(u, config.CLIClientID, cliRedirect)
	cfg := e.oauth2(rp{client: config.CLIClientID, redirect: cliRedirect})
	if _, err := cfg.Exchange(e.ctx, code, oauth2.VerifierOption(v)); oauthError(err) != "unauthorized_client" {
		t.Errorf("token endpoint with the CLI's code: %v, want unauthorized_client", err)
	}
	other := e.publicRP()
	code, v = e.cliCode(u, other.client, other.redirect)
	if w := cliLogin(h, auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: other.redirect}); w.Code != http.StatusUnauthorized {
		t.Fatalf("login endpoint with another client's code: %d", w.Code)
	}
	if _, err := e.oauth2(other).Exchange(e.ctx, code, oauth2.VerifierOption(v)); err != nil {
		t.Errorf("the other client's exchange after the refusal: %v", err)
	}
}
