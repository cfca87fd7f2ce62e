package oidc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/store"
)

// ssoUser is a single sign-on identity signed in to the browser: their session is a Login key
// with spec.identity and connectorData, as keystore/sso makes it.
func (e *env) ssoUser() *user {
	e.t.Helper()
	name := unique("okta-sue")
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "login-" + name}, Spec: v1.OwnedAccessKeySpec{
		User: name, Type: v1.AccessKeyTypeLogin, TTL: 600, Groups: []string{"idp-dev"},
		Identity: &v1.AccessKeyIdentity{UserID: "sub-" + name, Username: name, Groups: []string{"idp-dev"}, Connector: "okta", ConnectorData: []byte("sealed.v1.rt")},
	}}
	_, stored, err := keys.CreateObject(context.Background(), k)
	if err != nil {
		e.t.Fatal(err)
	}
	return &user{name: name, sess: &session.Session{User: name, Key: stored}}
}

// TestCLILoginOfSSOIdentity: a single sign-on identity's code becomes a CLI key that is a child
// of the session it signed in with: the session's groups, no longer life, no connectorData, and
// gone with the session. A session that ended meanwhile, or a session that is itself a CLI
// key, gets the 401 that says to sign in again.
func TestCLILoginOfSSOIdentity(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	h, err := auth.New(auth.Options{Keys: keys, Users: userS, Limits: auth.LimitStore{Redis: rdb}, CLICodes: e.p.CLICodes()})
	if err != nil {
		t.Fatal(err)
	}
	sue := e.ssoUser()
	code, v := e.cliCode(sue, config.CLIClientID, cliRedirect)
	w := cliLogin(h, auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d %s, want 200", w.Code, w.Body)
	}
	checkCLIKey(t, w, sue.name)
	var resp auth.LoginResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	child, err := keys.Get(ctx, resp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if child.Spec.Parent != sue.sess.Key.Name || !slices.Equal(child.Spec.Groups, []string{"idp-dev"}) || child.Spec.TTL > 600 ||
		child.Spec.Identity == nil || child.Spec.Identity.ConnectorData != nil {
		t.Errorf("CLI key %+v: want the child of %s with its groups, at most its ttl, no connectorData", child.Spec, sue.sess.Key.Name)
	}

	// The CLI key offered as a browser session has no identity provider behind it.
	asSession := &user{name: sue.name, sess: &session.Session{User: sue.name, Key: child}}
	code, v = e.cliCode(asSession, config.CLIClientID, cliRedirect)
	if w := cliLogin(h, auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}); w.Code != http.StatusUnauthorized {
		t.Errorf("a CLI key as the session: %d %s, want 401", w.Code, w.Body)
	}

	// Signed in, then the session ends before the CLI trades its code.
	code, v = e.cliCode(sue, config.CLIClientID, cliRedirect)
	if err := keys.Delete(ctx, sue.sess.Key.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(ctx, child.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the CLI key after its session's deletion: %v, want gone", err)
	}
	if w := cliLogin(h, auth.OIDCLoginRequest{Code: code, CodeVerifier: v, RedirectURI: cliRedirect}); w.Code != http.StatusUnauthorized {
		t.Errorf("a code of an ended session: %d %s, want 401", w.Code, w.Body)
	}
}
