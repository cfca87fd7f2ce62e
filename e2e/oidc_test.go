package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/users"
	"github.com/keygate-dev/keygate/localdev"
)

// TestKubeAPIServerTrustsTheEdgesIDTokens: a real kube-apiserver started with --oidc-issuer-url
// <edge>/oidc accepts an ID token the provider issued through the real Envoy: kubectl auth
// whoami with it shows the user and the user store's groups.
func TestKubeAPIServerTrustsTheEdgesIDTokens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api, caFile := startOIDCAPIServer(t, ctx)
	name := "oidc-" + randomHex(t, 4)
	tok, _ := oidcLogin(t, ctx, name, []string{"oidc-dev", "oidc-qa"})
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no ID token")
	}
	// kube-apiserver reads the issuer's discovery and keys in the background: poll.
	var who struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	var out []byte
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, err = exec.CommandContext(ctx, kubectl, "--server", api.URL, "--certificate-authority", caFile,
			"--token", idToken, "auth", "whoami", "-o", "json").CombinedOutput()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("kubectl auth whoami with the ID token: %v\n%s", err, out)
	}
	if err := json.Unmarshal(out, &who); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if who.Status.UserInfo.Username != name || !slices.Contains(who.Status.UserInfo.Groups, "oidc-dev") || !slices.Contains(who.Status.UserInfo.Groups, "oidc-qa") {
		t.Errorf("whoami = %+v, want user %s with groups oidc-dev and oidc-qa", who.Status.UserInfo, name)
	}
}

// startOIDCAPIServer starts an etcd and a kube-apiserver trusting the edge's OIDC provider for
// the demo client, and returns it with its CA file.
func startOIDCAPIServer(t *testing.T, ctx context.Context) (*kubeserver.APIServer, string) {
	dir := t.TempDir()
	etcd, etcdURL, err := kubeserver.StartEtcd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Stop(5 * time.Second) })
	ca, err := pki.NewCA("oidc-e2e")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := kubeserver.NewCerts(ca, filepath.Join(dir, "pki"), "ca.crt", "oidc-e2e-admin")
	if err != nil {
		t.Fatal(err)
	}
	edgeCA := filepath.Join(dir, "edge-ca.crt")
	if err := os.WriteFile(edgeCA, platform.EdgeCA, 0o644); err != nil {
		t.Fatal(err)
	}
	api, err := kubeserver.StartAPIServer(ctx, dir, "oidc", etcdURL, certs,
		"--oidc-issuer-url", platform.EdgeURL+"/oidc", "--oidc-ca-file", edgeCA,
		"--oidc-client-id", localdev.DemoOIDCClient, "--oidc-username-claim", "preferred_username",
		"--oidc-username-prefix", "-", "--oidc-groups-claim", "groups")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	return api, certs.CAFile
}

// TestOIDCThroughTheEdge: a go-oidc relying party runs the whole code + PKCE flow through the
// real Envoy and the login page: discovery, the ID token verified with the JWKS the edge
// serves, userinfo, a second sign-in on the session cookie without the form, refreshes that
// follow the user store's groups, and every way a refresh token ends: revoked (RFC 7009),
// its OIDCRefreshToken key deleted with kubectl, its user disabled.
func TestOIDCThroughTheEdge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "oidc-" + randomHex(t, 4)
	tok, b := oidcLogin(t, ctx, name, []string{"oidc-dev"})
	rp, verify := discover(t, ctx)
	claims := verify(t, tok)
	if claims.Subject != name || claims.PreferredUsername != name || claims.Email != name+"@example.com" || !slices.Equal(claims.Groups, []string{"oidc-dev"}) {
		t.Errorf("ID token claims %+v, want the store user %s and their groups", claims, name)
	}
	cctx := gooidc.ClientContext(ctx, client)
	info, err := rp.UserInfo(cctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != name || info.Email != name+"@example.com" {
		t.Errorf("userinfo through the edge: %+v, %v", info, err)
	}
	refreshTokenIsNoAccessKey(t, ctx, tok.RefreshToken)

	// The browser has a session: a second authorization comes back without the form.
	a, back := startAuthorization(t, b, demoRP())
	second := a.exchange(t, ctx, back)
	verify(t, second)

	// Groups are read at every token: a change in the user store shows at the next refresh.
	people := newUsersStore(t)
	if _, err := people.Update(ctx, name, func(u *users.User) error { u.Groups = []string{"oidc-dev", "oidc-ops"}; return nil }); err != nil {
		t.Fatal(err)
	}
	tok = refresh(t, ctx, tok.RefreshToken)
	if c := verify(t, tok); !slices.Equal(c.Groups, []string{"oidc-dev", "oidc-ops"}) {
		t.Errorf("groups after a refresh: %v, want the store's new ones", c.Groups)
	}

	revoke(t, ctx, rp, tok.RefreshToken)
	refreshRefused(t, ctx, tok.RefreshToken, "after revocation")

	// Deleting the refresh token's key with kubectl revokes it.
	k, err := keys.Lookup(ctx, second.RefreshToken)
	if err != nil || k.Spec.Type != v1.AccessKeyTypeOIDCRefreshToken || k.Spec.User != name {
		t.Fatalf("the refresh token's key: %+v, %v", k, err)
	}
	admin := kubeconfig(t, platform.AdminKey)
	if out, errOut, err := runKubectl(t, admin, management, "get", "ownedaccesskeys", k.Name, "-o", "jsonpath={.spec.oidcProvider.clientId}"); err != nil || out != localdev.DemoOIDCClient {
		t.Errorf("kubectl get ownedaccesskeys %s: %q %v %s", k.Name, out, err, errOut)
	}
	if _, errOut, err := runKubectl(t, admin, management, "delete", "ownedaccesskeys", k.Name); err != nil {
		t.Fatalf("kubectl delete: %v %s", err, errOut)
	}
	refreshRefused(t, ctx, second.RefreshToken, "after kubectl deleted its key")

	// A disabled user's refresh tokens are refused.
	third := startAgain(t, ctx, b)
	if _, err := people.Update(ctx, name, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	refreshRefused(t, ctx, third.RefreshToken, "after the user was disabled")
}

// startAgain runs a sign-in on the browser's session and returns its tokens.
func startAgain(t *testing.T, ctx context.Context, b *http.Client) *oauth2.Token {
	t.Helper()
	a, back := startAuthorization(t, b, demoRP())
	return a.exchange(t, ctx, back)
}

// idClaims are the ID token's claims the tests look at.
type idClaims struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	Groups            []string `json:"groups"`
}

// discover reads the provider's discovery through the edge, and returns it with a function
// verifying an ID token with the keys the edge serves (JWKS), for the demo client.
func discover(t *testing.T, ctx context.Context) (*gooidc.Provider, func(*testing.T, *oauth2.Token) idClaims) {
	t.Helper()
	cctx := gooidc.ClientContext(ctx, client)
	rp, err := gooidc.NewProvider(cctx, platform.EdgeURL+"/oidc")
	if err != nil {
		t.Fatalf("discovery through the edge: %v", err)
	}
	v := rp.Verifier(&gooidc.Config{ClientID: localdev.DemoOIDCClient})
	return rp, func(t *testing.T, tok *oauth2.Token) idClaims {
		t.Helper()
		raw, _ := tok.Extra("id_token").(string)
		id, err := v.Verify(cctx, raw)
		if err != nil {
			t.Fatalf("ID token %q: %v", raw, err)
		}
		var c idClaims
		if err := id.Claims(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func newUsersStore(t *testing.T) *users.Store {
	rdb, err := platform.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	return users.New(rdb, users.Options{Cost: bcrypt.MinCost})
}

// refresh uses a refresh token through the edge; each use answers a new one.
func refresh(t *testing.T, ctx context.Context, rt string) *oauth2.Token {
	t.Helper()
	tok, err := demoRP().TokenSource(context.WithValue(ctx, oauth2.HTTPClient, client), &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		t.Fatalf("refresh through the edge: %v", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == rt {
		t.Errorf("the refresh answered no new refresh token")
	}
	return tok
}

// refreshRefused checks the token endpoint refuses rt with invalid_grant.
func refreshRefused(t *testing.T, ctx context.Context, rt, when string) {
	t.Helper()
	_, err := demoRP().TokenSource(context.WithValue(ctx, oauth2.HTTPClient, client), &oauth2.Token{RefreshToken: rt}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh %s: %v, want invalid_grant", when, err)
	}
}

// revoke revokes a refresh token at the revocation endpoint discovery names (RFC 7009).
func revoke(t *testing.T, ctx context.Context, rp *gooidc.Provider, rt string) {
	t.Helper()
	var d struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := rp.Claims(&d); err != nil || !strings.HasPrefix(d.Revocation, platform.EdgeURL+"/oidc/") {
		t.Fatalf("revocation_endpoint %q: %v", d.Revocation, err)
	}
	form := url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {localdev.DemoOIDCClient}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.Revocation, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %s %s", resp.Status, body)
	}
}

// refreshTokenIsNoAccessKey: the edge refuses a refresh token as a bearer key on every target.
func refreshTokenIsNoAccessKey(t *testing.T, ctx context.Context, rt string) {
	t.Helper()
	for _, path := range []string{"/kubernetes/cluster/demo/api", "/kubernetes/management/apis/management.loft.sh/v1/ownedaccesskeys", "/grafana/demo/api/health"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, platform.EdgeURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+rt)
		if resp, _ := do(t, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a refresh token as the key: %d, want 401", path, resp.StatusCode)
		}
	}
}

// TestOIDCKeyRotationThroughTheEdge: another replica rotates the signing key in the shared
// Redis; the edge's keystore takes it up at its next key reload (every 30 s), so a refresh
// then answers an ID token with the new key, while the token signed with the old one still
// verifies with the JWKS the edge serves (the old key stays published until its tokens expire).
func TestOIDCKeyRotationThroughTheEdge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "oidc-" + randomHex(t, 4)
	old, _ := oidcLogin(t, ctx, name, []string{"oidc-dev"})
	_, verify := discover(t, ctx)
	verify(t, old)
	rdb, err := platform.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	box, err := sealed.Load(filepath.Join(platform.PKIDir(), "encryption.key"))
	if err != nil {
		t.Fatal(err)
	}
	replica, err := oidc.New(oidc.Options{ExternalURL: platform.EdgeURL, Redis: rdb, Box: box, Keys: keys, Users: newUsersStore(t),
		Clients: func() *config.OIDC { return &config.OIDC{} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	rt, fresh := old.RefreshToken, old
	eventually(t, 45*time.Second, "an ID token signed with the new key", func() error {
		fresh = refresh(t, ctx, rt)
		rt = fresh.RefreshToken
		if kidOf(t, fresh) == kidOf(t, old) {
			time.Sleep(time.Second) // the reload is seconds away: no need to refresh more often
			return fmt.Errorf("still signed with %s", kidOf(t, old))
		}
		return nil
	})
	verify(t, fresh)
	verify(t, old)
}

// kidOf is the key ID in the header of tok's ID token.
func kidOf(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	header, _, _ := strings.Cut(raw, ".")
	data, err := base64.RawURLEncoding.DecodeString(header)
	var h struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(data, &h) != nil || h.Kid == "" {
		t.Fatalf("ID token header %q: no kid", header)
	}
	return h.Kid
}
