package oidc_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/keystore/oidc"
)

// TestDiscovery checks every field the discovery document serves against OpenID Connect
// Discovery 1.0 §3 and RFC 8414: the issuer and every endpoint are the edge's URLs under /oidc
// (the handler itself is served at its listener's root), and only what the provider does is
// advertised.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	iss := e.srv.URL + "/oidc"
	var doc map[string]any
	e.getJSON(iss+"/.well-known/openid-configuration", &doc)
	want := map[string]any{
		"issuer":                                        iss,
		"authorization_endpoint":                        iss + "/authorize",
		"token_endpoint":                                iss + "/oauth/token",
		"userinfo_endpoint":                             iss + "/userinfo",
		"jwks_uri":                                      iss + "/keys",
		"revocation_endpoint":                           iss + "/revoke",
		"end_session_endpoint":                          iss + "/end_session",
		"introspection_endpoint":                        iss + "/oauth/introspect",
		"scopes_supported":                              []any{"openid", "profile", "email", "offline_access", "groups"},
		"response_types_supported":                      []any{"code"},
		"response_modes_supported":                      []any{"query", "fragment", "form_post"},
		"grant_types_supported":                         []any{"authorization_code", "refresh_token"},
		"subject_types_supported":                       []any{"public"},
		"id_token_signing_alg_values_supported":         []any{"RS256"},
		"token_endpoint_auth_methods_supported":         []any{"none", "client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":    []any{"none", "client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported": []any{"client_secret_basic"},
		"code_challenge_methods_supported":              []any{"S256"},
		"claims_supported": []any{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "at_hash", "c_hash", "azp",
			"preferred_username", "name", "email", "email_verified", "groups"},
		"request_uri_parameter_supported": false,
	}
	for _, field := range sortedKeys(want) {
		t.Run(field, func(t *testing.T) {
			got, _ := json.Marshal(doc[field])
			w, _ := json.Marshal(want[field])
			if string(got) != string(w) {
				t.Errorf("%s = %s, want %s", field, got, w)
			}
		})
	}
	for field := range doc {
		if _, ok := want[field]; !ok {
			t.Errorf("discovery serves %s = %v, which this test does not check", field, doc[field])
		}
	}
	// The JWKS it names holds public RSA keys only.
	var jwks struct{ Keys []map[string]any }
	e.getJSON(iss+"/keys", &jwks)
	if len(jwks.Keys) == 0 {
		t.Fatal("no key in the JWKS")
	}
	for _, k := range jwks.Keys {
		if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] == "" || k["d"] != nil || k["p"] != nil {
			t.Errorf("JWKS key %v: want a public RS256 signing key with a kid", k)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (e *env) getJSON(u string, v any) {
	e.t.Helper()
	resp, err := e.http.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		e.t.Fatalf("GET %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		e.t.Fatal(err)
	}
}

// TestAuthorizeErrors: OpenID Connect Core §3.1.2.6 and RFC 6749 §4.1.2.1. A request whose
// client or redirect URI cannot be trusted is answered here, never redirected (that would make
// the provider an open redirector); the rest go back to the client's redirect URI with an
// error code and the state.
func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, nil)
	pub := e.publicRP()
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := func(change func(q url.Values)) string {
		q := url.Values{"client_id": {pub.client}, "redirect_uri": {pub.redirect}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		change(q)
		return e.srv.URL + "/oidc/authorize?" + q.Encode()
	}
	tests := []struct {
		name      string
		change    func(q url.Values)
		redirects bool   // to the client with error; else a 400 page
		errorCode string // when it redirects
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, false, ""},
		{"unregistered redirect URI", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, false, ""},
		{"redirect URI of another path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:43123/other") }, false, ""},
		{"no redirect URI", func(q url.Values) { q.Del("redirect_uri") }, false, ""},
		{"public client without PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, true, "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, true, "invalid_request"},
		{"PKCE with no method (plain by default)", func(q url.Values) { q.Del("code_challenge_method") }, true, "invalid_request"},
		{"PKCE unknown method", func(q url.Values) { q.Set("code_challenge_method", "S512") }, true, "invalid_request"},
		// Sent back in the fragment, as an implicit flow's answer would be.
		{"implicit flow", func(q url.Values) { q.Set("response_type", "id_token") }, true, "unauthorized_client"},
		{"no scope", func(q url.Values) { q.Del("scope") }, true, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.http.Get(base(tc.change))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if !tc.redirects {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Errorf("%d, Location %q: want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), "http://127.0.0.1:43123/callback") {
				t.Fatalf("%d %s, Location %q: want a redirect to the client", resp.StatusCode, body, loc)
			}
			q := loc.Query()
			if loc.Fragment != "" {
				q, _ = url.ParseQuery(loc.Fragment)
			}
			if q.Get("error") != tc.errorCode || q.Get("state") != "xyz" || q.Get("code") != "" {
				t.Errorf("redirect %s: want error=%s, the state and no code", loc, tc.errorCode)
			}
		})
	}
}

// tokenResponse is a raw answer of the token endpoint.
type tokenResponse struct {
	status int
	header http.Header
	body   map[string]any
}

func (e *env) postToken(form url.Values, user, pass string) tokenResponse {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.rp.Endpoint().TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := tokenResponse{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&r.body)
	return r
}

// code runs the browser's part for u and returns a code with its PKCE verifier.
func (e *env) code(u *user, r rp) (code, verifier string) {
	e.t.Helper()
	verifier = oauth2.GenerateVerifier()
	loc := e.authorize(u, e.oauth2(r).AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	if loc.Query().Get("code") == "" {
		e.t.Fatalf("no code: %s", loc)
	}
	return loc.Query().Get("code"), verifier
}

// TestTokenErrors: RFC 6749 §5.2 and RFC 7636 §4.6. Every refusal is JSON with its error code
// (invalid_client with 401), and a refused request loses nothing: the code or refresh token
// still works for its rightful client afterwards.
func TestTokenErrors(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser("dev")
	pub, web := e.publicRP(), e.confidentialRP()
	exchange := func(code, verifier, redirect, client string) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {client}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return f
	}
	tests := []struct {
		name      string
		bad       func(code, verifier string) tokenResponse
		status    int
		errorCode string
		codeStays bool // the code still works afterwards with the right request
	}{
		{"unknown code", func(_, v string) tokenResponse {
			return e.postToken(exchange("not-a-code", v, pub.redirect, pub.client), "", "")
		}, 400, "invalid_grant", true},
		{"no code verifier", func(c, _ string) tokenResponse { return e.postToken(exchange(c, "", pub.redirect, pub.client), "", "") }, 400, "invalid_request", true},
		{"wrong code verifier", func(c, _ string) tokenResponse {
			return e.postToken(exchange(c, oauth2.GenerateVerifier(), pub.redirect, pub.client), "", "")
		}, 400, "invalid_grant", true},
		{"another redirect URI", func(c, v string) tokenResponse {
			return e.postToken(exchange(c, v, "http://127.0.0.1:1/callback", pub.client), "", "")
		}, 400, "invalid_grant", true},
		{"unknown client", func(c, v string) tokenResponse { return e.postToken(exchange(c, v, pub.redirect, "nobody"), "", "") }, 401, "invalid_client", true},
		{"another client", func(c, v string) tokenResponse {
			return e.postToken(exchange(c, v, web.redirect, ""), web.client, web.secret)
		}, 400, "invalid_grant", true},
		{"unsupported grant", func(c, v string) tokenResponse {
			return e.postToken(url.Values{"grant_type": {"password"}, "username": {u.name}, "password": {"x"}, "client_id": {pub.client}}, "", "")
		}, 400, "unsupported_grant_type", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := e.code(u, pub)
			r := tc.bad(code, verifier)
			if r.status != tc.status || r.body["error"] != tc.errorCode || r.body["access_token"] != nil {
				t.Errorf("%d %v, want %d with error %s and no token", r.status, r.body, tc.status, tc.errorCode)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store (RFC 6749 §5.1)", r.header.Get("Cache-Control"))
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
			if ok := e.postToken(exchange(code, verifier, pub.redirect, pub.client), "", ""); tc.codeStays && ok.status != 200 {
				t.Errorf("the code after the refused request: %d %v, want it to still work", ok.status, ok.body)
			}
		})
	}
}

// TestConfidentialTokenErrors: a wrong secret is invalid_client with 401 and the code stays
// good; a confidential client's PKCE challenge is enforced like a public one's.
func TestConfidentialTokenErrors(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser("dev")
	web := e.confidentialRP()
	exchange := func(code, verifier, redirect, client string) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {client}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return f
	}
	t.Run("wrong client secret", func(t *testing.T) {
		code, verifier := e.code(u, web)
		r := e.postToken(exchange(code, verifier, web.redirect, ""), web.client, "wrong-secret")
		if r.status != 401 || r.body["error"] != "invalid_client" {
			t.Errorf("%d %v, want 401 invalid_client", r.status, r.body)
		}
		if ok := e.postToken(exchange(code, verifier, web.redirect, ""), web.client, web.secret); ok.status != 200 {
			t.Errorf("with the right secret afterwards: %d %v", ok.status, ok.body)
		}
	})
	t.Run("confidential client without its challenge's verifier", func(t *testing.T) {
		code, _ := e.code(u, web)
		if r := e.postToken(exchange(code, "", web.redirect, ""), web.client, web.secret); r.status != 400 || r.body["error"] != "invalid_request" {
			t.Errorf("%d %v: a confidential client's challenge is enforced too", r.status, r.body)
		}
	})
}

// TestCodeReuse: a code is good once; presented again it is refused, and what was issued from
// it is revoked (RFC 6749 §4.1.2): the refresh token no longer refreshes, the access token no
// longer reads userinfo.
func TestCodeReuse(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser("dev")
	pub := e.publicRP()
	code, verifier := e.code(u, pub)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {pub.redirect}, "client_id": {pub.client}, "code_verifier": {verifier}}
	first := e.postToken(form, "", "")
	if first.status != 200 {
		t.Fatalf("first exchange: %d %v", first.status, first.body)
	}
	second := e.postToken(form, "", "")
	if second.status != 400 || second.body["error"] != "invalid_grant" {
		t.Errorf("second exchange: %d %v, want invalid_grant", second.status, second.body)
	}
	refresh, _ := first.body["refresh_token"].(string)
	if _, err := e.refresh(pub, refresh); oauthError(err) != "invalid_grant" {
		t.Errorf("refresh token of a reused code: %v, want invalid_grant", err)
	}
	access, _ := first.body["access_token"].(string)
	if _, err := e.rp.UserInfo(e.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access, TokenType: "Bearer"})); err == nil {
		t.Error("the access token of a reused code still reads userinfo")
	}
}

// TestExpiredCodeAndRefreshToken: past their lifetimes, a code and a refresh token are
// invalid_grant.
func TestExpiredCodeAndRefreshToken(t *testing.T) {
	var skew atomic.Int64
	e := newEnv(t, func(o *oidc.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		o.RefreshTokenTTL = time.Hour
	})
	u := e.newUser()
	pub := e.publicRP()
	tok := e.login(u, pub)
	code, verifier := e.code(u, pub)
	skew.Store(int64(2 * time.Hour))
	if _, err := e.refresh(pub, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("expired refresh token: %v, want invalid_grant", err)
	}
	r := e.postToken(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {pub.redirect}, "client_id": {pub.client}, "code_verifier": {verifier}}, "", "")
	if r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Errorf("expired code: %d %v, want invalid_grant", r.status, r.body)
	}
}

// TestRefreshByAnotherClientLosesNothing: a refresh token presented by another client is
// invalid_grant, and still works for its own.
func TestRefreshByAnotherClientLosesNothing(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser()
	tok := e.login(u, e.publicRP())
	if _, err := e.refresh(e.confidentialRP(), tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("another client's refresh: %v, want invalid_grant", err)
	}
	if _, err := e.refresh(e.publicRP(), tok.RefreshToken); err != nil {
		t.Errorf("the right client afterwards: %v", err)
	}
}

// TestRevocation: RFC 7009 §2.2. An unknown token is 200 (nothing to say); another client's
// token is refused and stays; an access token revoked no longer reads userinfo.
func TestRevocation(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser()
	pub, web := e.publicRP(), e.confidentialRP()
	tok := e.login(u, pub)
	revoke := func(form url.Values, user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/oidc/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	tests := []struct {
		name   string
		form   url.Values
		user   string
		status int
		errStr string
	}{
		{"unknown token", url.Values{"token": {"nonsense"}, "client_id": {pub.client}}, "", 200, ""},
		{"another client's refresh token", url.Values{"token": {tok.RefreshToken}}, web.client, 400, "unauthorized_client"},
		{"wrong client secret", url.Values{"token": {tok.RefreshToken}}, "web-wrong", 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, pass := tc.user, web.secret
			if user == "web-wrong" {
				user, pass = web.client, "wrong"
			}
			status, body := revoke(tc.form, user, pass)
			if status != tc.status || (tc.errStr != "" && body["error"] != tc.errStr) {
				t.Errorf("%d %v, want %d %s", status, body, tc.status, tc.errStr)
			}
		})
	}
	if _, err := e.refresh(pub, tok.RefreshToken); err != nil {
		t.Fatalf("the refresh token after refused revocations: %v", err)
	}
	tok = e.login(u, pub)
	if status, body := revoke(url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}, "client_id": {pub.client}}, "", ""); status != 200 {
		t.Fatalf("revoke access token: %d %v", status, body)
	}
	if _, err := e.rp.UserInfo(e.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("a revoked access token still reads userinfo")
	}
}

// TestEndSession: end_session with an ID token hint revokes the user's refresh tokens of
// that client and redirects to its registered post-logout URI; an unregistered one is refused.
func TestEndSession(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser()
	web := e.confidentialRP()
	tok := e.login(u, web)
	idToken, _ := tok.Extra("id_token").(string)
	bad := e.srv.URL + "/oidc/end_session?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.example.com/"}}.Encode()
	resp, err := e.http.Get(bad)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		t.Errorf("end_session redirected to an unregistered URI: %s", resp.Header.Get("Location"))
	}
	loc := e.follow(e.srv.URL + "/oidc/end_session?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://app.example.com/bye"}, "state": {"s1"}}.Encode())
	if loc.String() != "https://app.example.com/bye?state=s1" {
		t.Errorf("end_session redirect %s", loc)
	}
	if _, err := e.refresh(web, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("refresh after end_session: %v, want invalid_grant", err)
	}
}

// TestMetrics: the provider's metrics pass promlint and count what happened.
func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser()
	e.login(u, e.publicRP())
	if _, err := e.refresh(e.publicRP(), "kgk_not-a-refresh-token-at-all-not-at-all"); err == nil {
		t.Fatal("a made-up refresh token worked")
	}
	if err := e.p.RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	var jwks map[string]any
	e.getJSON(e.srv.URL+"/oidc/keys", &jwks)
	got := map[string]bool{}
	for _, mf := range metricstest.Lint(t, e.reg) {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = true
		}
	}
	for _, want := range []string{
		"keygate_keystore_oidc_token_requests_total{grant_type=authorization_code,result=ok}",
		"keygate_keystore_oidc_token_requests_total{grant_type=refresh_token,result=invalid_grant}",
		"keygate_keystore_oidc_refreshes_refused_total{reason=unknown}",
		"keygate_keystore_oidc_key_rotations_total{}",
		"keygate_keystore_oidc_signing_keys{}",
	} {
		if !got[want] {
			t.Errorf("no metric %s; have %v", want, slices.Sorted(mapKeys(got)))
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
