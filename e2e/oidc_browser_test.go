package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/internal/browsertest"
)

// TestBrowserSignInThroughTheEdge: a real headless Chromium opens a relying party (the demo
// client, on a loopback port as a native application), which sends it to the edge's
// /oidc/authorize; it lands on the login page served through Envoy, a wrong password shows the
// error, the right one takes it back to the relying party, which exchanges the code through
// the edge and shows who signed in. Screenshots are kept as artifacts.
func TestBrowserSignInThroughTheEdge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "browser-" + randomHex(t, 4)
	newStoreUser(t, ctx, name, []string{"oidc-dev"})
	rp := startBrowserRP(t, ctx)

	b := browsertest.New(t, edgeCertificate(t))
	shots := browsertest.ArtifactDir(t, "e2e-browser")
	browsertest.Do(t, b, "open the application", chromedp.Navigate(rp.URL+"/"), chromedp.WaitVisible("#username"))
	if loc := browsertest.Run(t, b, chromedp.Location()); !strings.HasPrefix(loc, platform.EdgeURL+"/auth/login?authRequestID=") {
		t.Errorf("the browser is at %s, want the edge's login page", loc)
	}
	if title := browsertest.Run(t, b, chromedp.Text("#title")); !strings.HasPrefix(title, "Sign in to") {
		t.Errorf("title %q", title)
	}
	browsertest.Do(t, b, "wrong password", chromedp.SendKeys("#username", name), chromedp.SendKeys("#password", "not the password"),
		chromedp.Click("#submit"), chromedp.WaitVisible("#error"))
	if msg := browsertest.Run(t, b, chromedp.Text("#error")); !strings.Contains(msg, "Wrong username or password") {
		t.Errorf("error shown: %q", msg)
	}
	browsertest.Screenshot(t, b, filepath.Join(shots, "1-wrong-password.png"))
	browsertest.Do(t, b, "right password", chromedp.SendKeys("#password", oidcPassword), chromedp.Click("#submit"),
		chromedp.WaitVisible("#user"))
	browsertest.Screenshot(t, b, filepath.Join(shots, "2-back-at-the-application.png"))
	if loc := browsertest.Run(t, b, chromedp.Location()); !strings.HasPrefix(loc, rp.URL+"/callback?code=") {
		t.Errorf("the browser is at %s, want the application's redirect URI with a code", loc)
	}
	if who := browsertest.Run(t, b, chromedp.Text("#user")); who != name {
		t.Errorf("the application signed in %q, want %s", who, name)
	}
}

// startBrowserRP is a relying party of the demo client: / starts a sign-in (PKCE, state),
// /callback exchanges the code through the edge and shows the ID token's user in #user.
func startBrowserRP(t *testing.T, ctx context.Context) *httptest.Server {
	t.Helper()
	cfg := demoRP()
	provider, _ := discover(t, ctx)
	idv := provider.Verifier(&gooidc.Config{ClientID: cfg.ClientID})
	verifier, state := oauth2.GenerateVerifier(), randomHex(t, 8)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("state") != state {
			http.Error(w, "wrong state", http.StatusBadRequest)
			return
		}
		tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, client), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		id, err := idv.Verify(gooidc.ClientContext(ctx, client), raw)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>application</title><p>signed in as <b id=user>%s</b></p>", html.EscapeString(id.Subject))
	})
	rp := httptest.NewServer(mux)
	t.Cleanup(rp.Close)
	// A native application's loopback redirect URI may use any port (RFC 8252 §7.3).
	cfg.RedirectURL = rp.URL + "/callback"
	return rp
}

// edgeCertificate is the edge's serving certificate, as Envoy presents it.
func edgeCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(platform.EdgeCA)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(platform.EdgeURL, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}
