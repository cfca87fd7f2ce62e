package oidc_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/users"
)

// TestDescribeAndComplete: what the login page sees of a pending request, and how it is
// finished: once, and only for a user who may have tokens.
func TestDescribeAndComplete(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	u := e.newUser()
	pending := func() string {
		loc := e.follow(e.oauth2(e.publicRP()).AuthCodeURL("s", oauth2S256()))
		return loc.Query().Get("authRequestID")
	}
	id := pending()
	got, err := e.p.Describe(ctx, id)
	if err != nil || got.ClientName != "The CLI" || got.ClientID != publicClient || !slices.Contains(got.Scopes, "groups") {
		t.Errorf("Describe = %+v, %v", got, err)
	}
	for name, id := range map[string]string{"unknown": "nope", "empty": ""} {
		if _, err := e.p.Describe(ctx, id); !errors.Is(err, session.ErrUnknownRequest) {
			t.Errorf("Describe(%s) = %v, want ErrUnknownRequest", name, err)
		}
		if _, err := e.p.Complete(ctx, id, u.sess); !errors.Is(err, session.ErrUnknownRequest) {
			t.Errorf("Complete(%s) = %v, want ErrUnknownRequest", name, err)
		}
	}
	redirect, err := e.p.Complete(ctx, id, u.sess)
	if err != nil || redirect != e.srv.URL+"/oidc/authorize/callback?id="+id {
		t.Errorf("Complete = %q, %v", redirect, err)
	}
	if _, err := e.p.Complete(ctx, id, u.sess); !errors.Is(err, session.ErrUnknownRequest) {
		t.Errorf("a second Complete = %v, want ErrUnknownRequest", err)
	}
	if _, err := e.p.Describe(ctx, id); !errors.Is(err, session.ErrUnknownRequest) {
		t.Errorf("Describe after Complete = %v, want ErrUnknownRequest", err)
	}

	disabled := e.newUser()
	if _, err := userS.Update(ctx, disabled.name, func(x *users.User) error { x.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Complete(ctx, pending(), disabled.sess); err == nil {
		t.Error("Complete for a disabled user succeeded")
	}
}

// TestSSOIdentity: a user the store does not have, signed in through a connector (their
// session's Login key has spec.identity): the identity's groups, live, and the session's end
// ends their refresh tokens.
func TestSSOIdentity(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	name := unique("sso-bob")
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "login-" + name}, Spec: v1.OwnedAccessKeySpec{
		User: name, Type: v1.AccessKeyTypeLogin, TTL: 3600, Groups: []string{"fallback"},
		Identity: &v1.AccessKeyIdentity{UserID: "123", Username: "Bob Example", PreferredUsername: "bob", Email: "bob@example.com", EmailVerified: true, Groups: []string{"idp-dev"}, Connector: "okta"},
	}}
	_, stored, err := keys.CreateObject(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	bob := &user{name: name, sess: &session.Session{User: name, Key: stored}}
	r := e.publicRP()
	tok := e.login(bob, r)
	if _, c := e.idToken(tok, publicClient); c.Sub != name || c.PreferredUsername != name || c.Email != "bob@example.com" || !slices.Equal(c.Groups, []string{"idp-dev"}) {
		t.Errorf("claims %+v", c)
	}
	// The connector refreshes the identity: its groups change; then they are gone, and
	// spec.groups stands in.
	for _, tc := range []struct {
		groups []string
		want   []string
	}{{[]string{"idp-ops"}, []string{"idp-ops"}}, {nil, []string{"fallback"}}} {
		if _, err := keys.Modify(ctx, stored.Name, func(k *v1.OwnedAccessKey) error { k.Spec.Identity.Groups = tc.groups; return nil }); err != nil {
			t.Fatal(err)
		}
		if tok, err = e.refresh(r, tok.RefreshToken); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if _, c := e.idToken(tok, publicClient); !slices.Equal(c.Groups, tc.want) {
			t.Errorf("groups %v, want %v", c.Groups, tc.want)
		}
	}
	if err := keys.SetDisabled(ctx, stored.Name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.refresh(r, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("refresh with the session disabled: %v, want invalid_grant", err)
	}
	if err := keys.SetDisabled(ctx, stored.Name, false); err != nil {
		t.Fatal(err)
	}
	if err := keys.Delete(ctx, stored.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.refresh(r, tok.RefreshToken); oauthError(err) != "invalid_grant" {
		t.Errorf("refresh with the session gone: %v, want invalid_grant", err)
	}
	// A store user of the same name created later is not this identity.
	if err := userS.Create(ctx, users.User{Name: name}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	id := e.follow(e.oauth2(r).AuthCodeURL("s", oauth2S256())).Query().Get("authRequestID")
	if _, err := e.p.Complete(ctx, id, bob.sess); err == nil || errors.Is(err, session.ErrUnknownRequest) {
		t.Error("Complete for an external identity whose name the store now has succeeded")
	}
}
