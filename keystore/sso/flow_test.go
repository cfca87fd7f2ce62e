package sso_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/metricstest"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/sso"
)

// TestLoginRefreshAndRevocation: a user signs in through a real IdP, gets a Login key with the
// IdP's identity and groups and a sealed refresh token; the IdP changes the user's groups and
// a refresh pass follows; the IdP revokes the refresh token and the next pass disables the key.
func TestLoginRefreshAndRevocation(t *testing.T) {
	name := unique("alice")
	e := newEdge(t, []testidpUser{user(name)}, nil)
	noErr(t, e.idp.SetGroups("sub-"+name, []string{"dev", "ops"}))

	resp, body := e.signIn(t, e.browser, name, "idp-password")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as "+name) {
		t.Fatalf("login: %s\n%s", resp.Status, body)
	}
	k := checkLoginKey(t, name, []string{"dev", "ops"})
	id := k.Spec.Identity
	// The session cookie is the key.
	if plain := sessionCookie(e, e.browser); plain == "" {
		t.Fatal("no session cookie")
	} else if got, err := keys.Lookup(context.Background(), plain); err != nil || got.Name != k.Name {
		t.Fatalf("session cookie is not the key: %v %v", got, err)
	}
	rt1 := openRefreshToken(t, e, k.Name, id.ConnectorData)
	noPlaintextInRedis(t, rt1)

	// Groups change at the IdP; before the interval nothing is due.
	noErr(t, e.idp.SetGroups("sub-"+name, []string{"dev"}))
	if n := e.h.RefreshDue(context.Background()); n != 0 {
		t.Fatalf("refreshed %d keys before their interval", n)
	}
	e.clock.Add(61 * time.Second)
	e.h.RefreshDue(context.Background())
	k = oneKey(t, name)
	if !slices.Equal(k.Spec.Groups, []string{"dev"}) || !slices.Equal(k.Spec.Identity.Groups, []string{"dev"}) || k.Spec.Disabled {
		t.Fatalf("after refresh: groups %v identity %v disabled %v", k.Spec.Groups, k.Spec.Identity.Groups, k.Spec.Disabled)
	}
	if !k.Spec.IdentityRefresh.Time.After(e.clock.Now().Add(-2 * time.Second)) {
		t.Errorf("identityRefresh %v not moved to now %v", k.Spec.IdentityRefresh, e.clock.Now())
	}
	rt2 := openRefreshToken(t, e, k.Name, k.Spec.Identity.ConnectorData)
	if rt2 == rt1 {
		t.Errorf("the IdP's rotated refresh token was not stored")
	}
	noPlaintextInRedis(t, rt2)

	// The IdP refuses the refresh token: the key is disabled, and says why.
	noErr(t, e.idp.Revoke("sub-"+name))
	e.clock.Add(61 * time.Second)
	e.h.RefreshDue(context.Background())
	k = oneKey(t, name)
	if !k.Spec.Disabled || k.Annotations[sso.DisabledByAnnotation] != sso.DisabledByRefresh || !strings.Contains(k.Annotations[sso.RefreshFailedAnnotation], "invalid_grant") {
		t.Fatalf("after revocation: disabled %v annotations %v", k.Spec.Disabled, k.Annotations)
	}
	mfs := metricstest.Lint(t, e.reg)
	wantCounter(t, mfs, "keygate_keystore_sso_logins_total", map[string]string{"connector": "idp", "result": "ok"}, 1)
	wantCounter(t, mfs, "keygate_keystore_sso_identity_refreshes_total", map[string]string{"result": "ok"}, 1)
	wantCounter(t, mfs, "keygate_keystore_sso_identity_refreshes_total", map[string]string{"result": "disabled"}, 1)
}

// openRefreshToken opens a key's connectorData, which must open only for that key.
func openRefreshToken(t *testing.T, e *edge, name string, data []byte) string {
	t.Helper()
	rt, err := e.box.Open(string(data), sso.ConnectorDataPlace(name))
	if err != nil || len(rt) == 0 {
		t.Fatalf("connectorData does not open for %s: %v", name, err)
	}
	if _, err := e.box.Open(string(data), sso.ConnectorDataPlace(name+"x")); err == nil {
		t.Fatal("connectorData opens for another key")
	}
	return string(rt)
}

// noPlaintextInRedis reads every raw record: the refresh token is in none, plain or base64.
func noPlaintextInRedis(t *testing.T, rt string) {
	t.Helper()
	recs, err := rdb.HGetAll(context.Background(), "keygate:{accesskeys}:records").Result()
	if err != nil {
		t.Fatal(err)
	}
	events, err := rdb.XRange(context.Background(), "keygate:{accesskeys}:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, r := range recs {
		all = append(all, r)
	}
	for _, ev := range events {
		for _, v := range ev.Values {
			s, _ := v.(string)
			all = append(all, s)
		}
	}
	for _, r := range all {
		for _, needle := range []string{rt, base64.StdEncoding.EncodeToString([]byte(rt))} {
			if strings.Contains(r, needle) {
				t.Fatalf("Redis holds the refresh token in plaintext: %s", r)
			}
		}
	}
}

// checkLoginKey returns the one key of name, checked to be a Login key with the IdP's identity.
func checkLoginKey(t *testing.T, name string, groups []string) *v1.OwnedAccessKey {
	t.Helper()
	k := oneKey(t, name)
	id := k.Spec.Identity
	if k.Spec.Type != "Login" || !slices.Equal(k.Spec.Groups, groups) || id == nil ||
		id.UserID != "sub-"+name || id.Username != name || id.PreferredUsername != name || id.Email != name+"@example.com" ||
		!id.EmailVerified || id.Connector != "idp" || !slices.Equal(id.Groups, groups) || k.Spec.IdentityRefresh == nil {
		t.Fatalf("key: %+v identity %+v", k.Spec, id)
	}
	if k.Annotations["keygate.dev/owner-uid"] != "" {
		t.Errorf("an SSO key records an owner UID: %v", k.Annotations)
	}
	return k
}
