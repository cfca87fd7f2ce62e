package oidc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// TestCodeFlowWithPKCE is a relying party built with go-oidc and x/oauth2 signing a user in:
// discovery, the code flow with PKCE, the ID token verified with the provider's JWKS,
// userinfo, and a refresh token that is an OwnedAccessKey.
func TestCodeFlowWithPKCE(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser("dev", "qa")
	tok := e.login(u, e.publicRP())
	idt, c := e.idToken(tok, publicClient)

	want := claims{Sub: u.name, PreferredUsername: u.name, Name: "Alice Example", Email: u.name + "@example.com", Groups: []string{"dev", "qa"}, Nonce: "n0nce", Azp: publicClient}
	c.AtHash = ""
	if !equalClaims(c, want) {
		t.Errorf("ID token claims = %+v, want %+v", c, want)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash does not match the access token: %v", err)
	}
	if len(idt.Audience) != 1 || idt.Audience[0] != publicClient {
		t.Errorf("aud = %v, want [%s]", idt.Audience, publicClient)
	}

	info, err := e.rp.UserInfo(e.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var ic claims
	if err := info.Claims(&ic); err != nil {
		t.Fatal(err)
	}
	if ic.Sub != u.name || ic.PreferredUsername != u.name || !slices.Equal(ic.Groups, []string{"dev", "qa"}) {
		t.Errorf("userinfo = %+v", ic)
	}

	rks := refreshKeys(t, u.name)
	if len(rks) != 1 {
		t.Fatalf("refresh token keys of %s: %d, want 1", u.name, len(rks))
	}
	k := rks[0]
	if k.Spec.OIDCProvider == nil || k.Spec.OIDCProvider.ClientID != publicClient || k.Spec.OIDCProvider.Nonce != "n0nce" ||
		k.Spec.OIDCProvider.RedirectURI != e.publicRP().redirect || !strings.Contains(k.Spec.OIDCProvider.Scopes, "offline_access") ||
		k.Spec.Parent != u.sess.Key.Name || k.Annotations["keygate.dev/owner-uid"] == "" || k.Spec.TTL <= 0 {
		t.Errorf("refresh token key = %+v %+v", k.ObjectMeta, k.Spec)
	}
}

func equalClaims(a, b claims) bool {
	return a.Sub == b.Sub && a.PreferredUsername == b.PreferredUsername && a.Name == b.Name && a.Email == b.Email &&
		slices.Equal(a.Groups, b.Groups) && a.Nonce == b.Nonce && a.Azp == b.Azp
}

// TestRefresh: each refresh gives new tokens and a new refresh token (the old one is deleted),
// with the user's groups as the store has them now.
func TestRefresh(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	u := e.newUser("dev")
	r := e.publicRP()
	tok := e.login(u, r)

	if _, err := userS.Update(ctx, u.name, func(x *users.User) error { x.Groups = []string{"ops"}; return nil }); err != nil {
		t.Fatal(err)
	}
	// A second later, so that a refreshed auth_time that moved would show (times are seconds).
	time.Sleep(1100 * time.Millisecond)
	tok2, err := e.refresh(r, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	_, c := e.idToken(tok2, publicClient)
	if !slices.Equal(c.Groups, []string{"ops"}) {
		t.Errorf("groups after the change = %v, want [ops]", c.Groups)
	}
	if _, c1 := e.idToken(tok, publicClient); c1.AuthTime == 0 || c.AuthTime != c1.AuthTime {
		t.Errorf("auth_time after a refresh = %d, want the sign-in's %d (OIDC Core §12.2)", c.AuthTime, c1.AuthTime)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Error("a refresh must give a new access token and a new refresh token")
	}
	if _, err := e.refresh(r, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("the replaced refresh token: %v, want invalid_grant", err)
	}
	if n := len(refreshKeys(t, u.name)); n != 1 {
		t.Errorf("refresh token keys after a refresh: %d, want 1 (the old one deleted)", n)
	}

}

// TestRefreshRefused: revoking the refresh token, deleting or disabling its key, or disabling
// or deleting the user ends it.
func TestRefreshRefused(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	eachKey := func(t *testing.T, u *user, f func(name string) error) {
		for _, k := range refreshKeys(t, u.name) {
			if err := f(k.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name     string
		spoil    func(t *testing.T, u *user, refresh string)
		keyStays bool // a refused refresh deletes nothing
	}{
		{"revoked", func(t *testing.T, _ *user, refresh string) { e.revoke(refresh) }, false},
		{"key deleted", func(t *testing.T, u *user, _ string) {
			eachKey(t, u, func(n string) error { return keys.Delete(ctx, n) })
		}, false},
		{"key disabled", func(t *testing.T, u *user, _ string) {
			eachKey(t, u, func(n string) error { return keys.SetDisabled(ctx, n, true) })
		}, true},
		{"user disabled", func(t *testing.T, u *user, _ string) {
			if _, err := userS.Update(ctx, u.name, func(x *users.User) error { x.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"user deleted", func(t *testing.T, u *user, _ string) {
			if err := userS.Delete(ctx, u.name); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := e.newUser("dev")
			tok := e.login(u, e.publicRP())
			tc.spoil(t, u, tok.RefreshToken)
			if _, err := e.refresh(e.publicRP(), tok.RefreshToken); oauthError(err) != "invalid_grant" {
				t.Errorf("refresh: %v, want invalid_grant", err)
			}
			if n := len(refreshKeys(t, u.name)); tc.keyStays && n != 1 {
				t.Errorf("refresh token keys: %d, want 1: a refused refresh deletes nothing", n)
			}
		})
	}
}

// revoke revokes a token of the public client (RFC 7009).
func (e *env) revoke(token string) {
	e.t.Helper()
	resp, err := e.http.PostForm(e.srv.URL+"/oidc/revoke", url.Values{"token": {token}, "client_id": {publicClient}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// TestConfidentialClient: a client with a secret signs in with PKCE and basic authentication;
// a wrong secret is invalid_client with 401, and loses nothing.
func TestConfidentialClient(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser("dev")
	r := e.confidentialRP()
	tok := e.login(u, r)
	e.idToken(tok, confidentialClient)

	bad := r
	bad.secret = "wrong"
	_, err := e.refresh(bad, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if oauthError(err) != "invalid_client" || !asRetrieve(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("refresh with a wrong secret: %v, want invalid_client with 401", err)
	}
	if _, err := e.refresh(r, tok.RefreshToken); err != nil {
		t.Errorf("refresh with the right secret after a wrong one: %v", err)
	}
}

func asRetrieve(err error, re **oauth2.RetrieveError) bool {
	e, ok := err.(*oauth2.RetrieveError)
	if ok {
		*re = e
	}
	return ok
}

// TestRefreshTokenKeysAreListed: refresh tokens are keys a user sees and deletes.
func TestRefreshTokenKeysAreListed(t *testing.T) {
	e := newEnv(t, nil)
	u := e.newUser()
	e.login(u, e.publicRP())
	ks := refreshKeys(t, u.name)
	if len(ks) != 1 || ks[0].Spec.Type != v1.AccessKeyTypeOIDCRefreshToken || !strings.HasPrefix(ks[0].Name, "oidc-cli-") {
		b, _ := json.Marshal(ks)
		t.Errorf("keys = %s", b)
	}
}
