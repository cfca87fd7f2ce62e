package sso_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/users"
)

// stopAtEdgeCallback makes b stop before the edge's callback, to hold the callback URL (with
// the IdP's code) instead of using it.
func stopAtEdgeCallback(e *edge, b *http.Client) {
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), e.srv.URL+"/auth/idp/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// callbackURL signs user in at the IdP in browser b and returns the edge callback URL the IdP
// sends b to, unused.
func (e *edge) callbackURL(t *testing.T, b *http.Client, user string) *url.URL {
	t.Helper()
	stopAtEdgeCallback(e, b)
	resp, body := e.signIn(t, b, user, "idp-password")
	loc, err := resp.Location()
	if resp.StatusCode/100 != 3 || err != nil {
		t.Fatalf("IdP login did not redirect to the edge: %s %s", resp.Status, body)
	}
	b.CheckRedirect = nil
	return loc
}

// TestStateIsBoundToTheBrowserAndUsedOnce: a callback URL is worth nothing in another browser
// (login CSRF), nor with a state that is not the browser's, nor a second time.
func TestStateIsBoundToTheBrowserAndUsedOnce(t *testing.T) {
	name := unique("sam")
	e := newEdge(t, []testidpUser{user(name)}, nil)

	cb := e.callbackURL(t, e.browser, name)
	// Another browser (the attacker's link in the victim's) has no state cookie.
	if resp, body := get(t, e.newBrowser(t), cb.String()); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not valid in this browser") {
		t.Fatalf("callback in another browser: %s %s", resp.Status, body)
	}
	// The right browser with a state that is not its own.
	bad := *cb
	q := bad.Query()
	q.Set("state", "x"+q.Get("state"))
	bad.RawQuery = q.Encode()
	if resp, _ := get(t, e.browser, bad.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with another state: %s", resp.Status)
	}
	if ks := keysOf(t, name); len(ks) != 0 {
		t.Fatalf("refused callbacks made keys: %v", ks)
	}

	// A fresh login, used once, then replayed with the state cookie put back.
	cb = e.callbackURL(t, e.browser, name)
	if resp, body := get(t, e.browser, cb.String()); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s %s", resp.Status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, cb.String(), nil)
	req.AddCookie(&http.Cookie{Name: "keygate_sso_state", Value: cb.Query().Get("state")})
	resp, err := e.newBrowser(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback: %s", resp.Status)
	}
	if ks := keysOf(t, name); len(ks) != 1 {
		t.Fatalf("%d keys after one login and a replay, want 1", len(ks))
	}
	mfs := metricstest.Lint(t, e.reg)
	wantCounter(t, mfs, "keygate_keystore_sso_logins_total", map[string]string{"connector": "idp", "result": "bad_state"}, 3)
}

// TestWrongNonceIsRefused: an ID token whose nonce is not the pending login's is refused.
// PKCE already binds the code to the login that asked for it, so the test changes the
// pending login's nonce in Redis to show the nonce check on its own.
func TestWrongNonceIsRefused(t *testing.T) {
	name := unique("nina")
	e := newEdge(t, []testidpUser{user(name)}, nil)
	cb := e.callbackURL(t, e.browser, name)
	pendingKey := "keygate:sso:state:{" + cb.Query().Get("state") + "}"
	ctx := context.Background()
	var pl map[string]any
	data, err := rdb.Get(ctx, pendingKey).Bytes()
	if err != nil || json.Unmarshal(data, &pl) != nil {
		t.Fatalf("pending login: %v", err)
	}
	pl["nonce"] = "another-login-s-nonce"
	data, _ = json.Marshal(pl)
	rdb.Set(ctx, pendingKey, data, 0)
	if resp, body := get(t, e.browser, cb.String()); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "could not be verified") {
		t.Fatalf("callback with another nonce: %s %s", resp.Status, body)
	}
	if ks := keysOf(t, name); len(ks) != 0 {
		t.Fatalf("a wrong nonce made keys: %v", ks)
	}
	wantCounter(t, metricstest.Lint(t, e.reg), "keygate_keystore_sso_logins_total", map[string]string{"connector": "idp", "result": "invalid_token"}, 1)
}

// TestStoreUserNameIsRefused: an IdP user named like a user of the store never signs in as
// them; with a usernamePrefix the same IdP user is another name and signs in.
func TestStoreUserNameIsRefused(t *testing.T) {
	name := unique("root")
	if err := userS.Create(context.Background(), users.User{Name: name, Groups: []string{"keygate:admins"}}, "store-password"); err != nil {
		t.Fatal(err)
	}
	e := newEdge(t, []testidpUser{user(name)}, nil)
	resp, body := e.signIn(t, e.browser, name, "idp-password")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "own user store") {
		t.Fatalf("IdP user named like a store user: %s %s", resp.Status, body)
	}
	if ks := keysOf(t, name); len(ks) != 0 {
		t.Fatalf("the refused login made keys: %v", ks)
	}
	if sessionCookie(e, e.browser) != "" {
		t.Fatal("the refused login set a session")
	}

	p := newEdge(t, []testidpUser{user(name)}, func(o *config.OIDCConnector) { o.UsernamePrefix = "corp:" })
	if resp, body := p.signIn(t, p.browser, name, "idp-password"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as corp:"+name) {
		t.Fatalf("prefixed login: %s %s", resp.Status, body)
	}
	oneKey(t, "corp:"+name)
}

// TestReservedGroupsAreDropped: an IdP claiming the admin group, system:masters or a loft:
// identity group gives none of them, unless the connector lists the edge's group as one it
// may grant; system: and loft: never.
func TestReservedGroupsAreDropped(t *testing.T) {
	claimed := []string{"keygate:admins", "system:masters", "loft:team:platform", "keygate:other", " dev", "dev", "dev"}
	for _, tc := range []struct {
		name       string
		privileged []string
		want       []string
	}{
		{"default", nil, []string{"dev"}},
		{"admin group allowed", []string{"keygate:admins"}, []string{"keygate:admins", "dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unique("mallory-" + strings.ReplaceAll(tc.name, " ", "-"))
			e := newEdge(t, []testidpUser{user(name)}, func(o *config.OIDCConnector) { o.PrivilegedGroups = tc.privileged })
			noErr(t, e.idp.SetGroups("sub-"+name, claimed))
			if resp, body := e.signIn(t, e.browser, name, "idp-password"); resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %s %s", resp.Status, body)
			}
			if k := oneKey(t, name); !slices.Equal(k.Spec.Groups, tc.want) || !slices.Equal(k.Spec.Identity.Groups, tc.want) {
				t.Fatalf("groups %v (identity %v), want %v", k.Spec.Groups, k.Spec.Identity.Groups, tc.want)
			}
		})
	}
}

// TestUnusableNamesAndGroupsAreRefused: a name that would read as the edge's own identity
// (loft:team:x) or carry another connector's prefix is refused; so is a user in none of the
// allowed groups, and one removed from them is disabled at the next refresh.
func TestUnusableNamesAndGroupsAreRefused(t *testing.T) {
	team := testidpUser{ID: "sub-team", Username: "loft:team:platform", Password: "idp-password"}
	name := unique("gail")
	e := newEdge(t, []testidpUser{team, user(name)}, func(o *config.OIDCConnector) { o.AllowedGroups = []string{"staff"} })
	noErr(t, e.idp.SetGroups("sub-team", []string{"staff"}))
	if resp, body := e.signIn(t, e.browser, "loft:team:platform", "idp-password"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not usable") {
		t.Fatalf("name with ':': %s %s", resp.Status, body)
	}
	if resp, body := e.signIn(t, e.newBrowser(t), name, "idp-password"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "none of the groups") {
		t.Fatalf("user outside allowedGroups: %s %s", resp.Status, body)
	}
	noErr(t, e.idp.SetGroups("sub-"+name, []string{"staff"}))
	if resp, body := e.signIn(t, e.newBrowser(t), name, "idp-password"); resp.StatusCode != http.StatusOK {
		t.Fatalf("user in allowedGroups: %s %s", resp.Status, body)
	}
	noErr(t, e.idp.SetGroups("sub-"+name, []string{"other"}))
	e.clock.Add(61e9)
	e.h.RefreshDue(context.Background())
	if k := oneKey(t, name); !k.Spec.Disabled || !strings.Contains(k.Annotations["keygate.dev/identity-refresh-failure"], "none of the groups") {
		t.Fatalf("user removed from allowedGroups: disabled %v %v", k.Spec.Disabled, k.Annotations)
	}
}

// TestIdPErrorCreatesNothing: the IdP's error answer (the user cancelled) is a clear 403 page.
func TestIdPErrorCreatesNothing(t *testing.T) {
	name := unique("ivan")
	e := newEdge(t, []testidpUser{user(name)}, nil)
	cb := e.callbackURL(t, e.browser, name)
	q := url.Values{"error": {"access_denied"}, "error_description": {"<script>alert(1)</script>"}, "state": {cb.Query().Get("state")}}
	resp, body := get(t, e.browser, e.srv.URL+"/auth/idp/callback?"+q.Encode())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "access_denied") || strings.Contains(body, "<script>") {
		t.Fatalf("IdP error: %s %s", resp.Status, body)
	}
	// The pending login is gone with the error: the code cannot be used after it.
	if resp, _ := get(t, e.browser, cb.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback after the IdP's error: %s", resp.Status)
	}
	if ks := keysOf(t, name); len(ks) != 0 {
		t.Fatalf("keys made: %v", ks)
	}
}

// TestLoginStartsAreLimitedPerAddress: each start leaves a pending login in Redis, so one
// address starting logins in a loop is refused with 429 once past its burst, before anything is
// stored, while another address still gets through.
func TestLoginStartsAreLimitedPerAddress(t *testing.T) {
	e := newEdge(t, []testidpUser{user(unique("flood"))}, nil)
	b := e.newBrowser(t)
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := func(addr string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/auth/idp/login", nil)
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := b.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range auth.DefaultStartLimit.Burst {
		if resp := start("192.0.2.7"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("start %d: %s, want 303 to the IdP", i+1, resp.Status)
		}
	}
	resp := start("192.0.2.7")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("start past the burst: %s (Retry-After %q), want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	if resp := start("198.51.100.9"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another address: %s, want 303", resp.Status)
	}
}

// An IdP that cannot be reached is the IdP's failure, not the client's: 502 and a page saying
// so.
func TestUnreachableIdPIs502(t *testing.T) {
	e := newEdge(t, nil, func(o *config.OIDCConnector) { o.IssuerURL = "https://127.0.0.1:1" })
	b := e.newBrowser(t)
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.Get(e.srv.URL + "/auth/idp/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "cannot be reached") {
		t.Errorf("login with the IdP down: %s %q, want 502 saying the IdP cannot be reached", resp.Status, body)
	}
}
