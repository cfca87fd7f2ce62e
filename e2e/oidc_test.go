package e2e

import (
	"context"
	"encoding/json"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
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
	tok := oidcLogin(t, ctx, name, []string{"oidc-dev", "oidc-qa"})
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

// oidcLogin signs a new store user in to the demo client through the edge: the authorization
// request and the callback go through Envoy to keystore; the login page's part (finishing the
// request for a session) is done by a second provider replica on the same Redis, as the login
// page would.
func oidcLogin(t *testing.T, ctx context.Context, name string, groups []string) *oauth2.Token {
	rdb, err := platform.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	people := users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	if err := people.Create(ctx, users.User{Name: name, Groups: groups}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	u, err := people.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	login := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "login-" + name}, Spec: v1.OwnedAccessKeySpec{User: name, Type: v1.AccessKeyTypeLogin, TTL: 3600}}
	accesskey.SetOwnerUID(login, u.UID)
	_, stored, err := keys.CreateObject(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	box, err := sealed.Load(filepath.Join(platform.PKIDir(), "encryption.key"))
	if err != nil {
		t.Fatal(err)
	}
	replica, err := oidc.New(oidc.Options{ExternalURL: platform.EdgeURL, Redis: rdb, Box: box, Keys: keys, Users: people,
		Clients: func() *config.OIDC { return &config.OIDC{} }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: localdev.DemoOIDCClient, RedirectURL: "http://127.0.0.1:8000/callback",
		Endpoint: oauth2.Endpoint{AuthURL: platform.EdgeURL + "/oidc/authorize", TokenURL: platform.EdgeURL + "/oidc/oauth/token"},
		Scopes:   []string{"openid", "profile", "groups", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	loc := edgeRedirect(t, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if !strings.HasPrefix(loc.String(), platform.EdgeURL+"/auth/login?") {
		t.Fatalf("authorize sent the browser to %s, want the login page", loc)
	}
	callback, err := replica.Complete(ctx, loc.Query().Get("authRequestID"), &session.Session{User: name, Key: stored})
	if err != nil {
		t.Fatal(err)
	}
	loc = edgeRedirect(t, callback)
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, client), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange through the edge: %v", err)
	}
	return tok
}

// edgeRedirect GETs u through the edge and returns where it redirects.
func edgeRedirect(t *testing.T, u string) *url.URL {
	t.Helper()
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d, want a redirect", u, resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestOIDCThroughTheEdge: a go-oidc relying party, through the real Envoy: discovery, the ID
// token verified with the JWKS, userinfo (its bearer token passes the public route untouched),
// a refresh, and the refresh token refused as an access key on every target.
func TestOIDCThroughTheEdge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "oidc-" + randomHex(t, 4)
	tok := oidcLogin(t, ctx, name, []string{"oidc-dev"})
	cctx := gooidc.ClientContext(ctx, client)
	rp, err := gooidc.NewProvider(cctx, platform.EdgeURL+"/oidc")
	if err != nil {
		t.Fatalf("discovery through the edge: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if _, err := rp.Verifier(&gooidc.Config{ClientID: localdev.DemoOIDCClient}).Verify(cctx, raw); err != nil {
		t.Errorf("ID token: %v", err)
	}
	info, err := rp.UserInfo(cctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != name {
		t.Errorf("userinfo through the edge: %+v, %v", info, err)
	}
	cfg := &oauth2.Config{ClientID: localdev.DemoOIDCClient, Endpoint: rp.Endpoint()}
	fresh, err := cfg.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, client), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh through the edge: %v", err)
	}
	for _, path := range []string{"/kubernetes/cluster/demo/api", "/kubernetes/management/apis/management.loft.sh/v1/ownedaccesskeys", "/grafana/demo/api/health"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, platform.EdgeURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+fresh.RefreshToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a refresh token as the key: %d, want 401", path, resp.StatusCode)
		}
	}
}
