package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestScopeWithin(t *testing.T) {
	demo := v1.AccessKeyScopeCluster{Cluster: "demo"}
	staging := v1.AccessKeyScopeCluster{Cluster: "staging"}
	readPods := v1.AccessKeyScopeRule{Verbs: []string{"get"}, Resources: []v1.GroupResources{{Resources: []string{"pods"}}}}
	scope := func(s v1.AccessKeyScope) *v1.AccessKeyScope { return &s }
	for name, tc := range map[string]struct {
		inner, outer *v1.AccessKeyScope
		want         bool
	}{
		"anything within no scope":              {scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), nil, true},
		"no scope within no scope":              {nil, nil, true},
		"no scope is not within a scope":        {nil, scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), false},
		"an empty scope is no scope":            {scope(v1.AccessKeyScope{}), scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), false},
		"the same entry":                        {scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), true},
		"fewer entries":                         {scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo, staging}}), true},
		"another cluster":                       {scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{staging}}), scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), false},
		"a rule within a rule":                  {scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{readPods}}), scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{readPods}}), true},
		"a cluster beside a rule":               {scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{readPods}, Clusters: []v1.AccessKeyScopeCluster{demo}}), scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{readPods}}), false},
		"a wider rule":                          {scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"*"}}}}), scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{readPods}}), false},
		"the loft-cli allow-list needs its own": {scope(v1.AccessKeyScope{AllowLoftCLI: true}), scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{demo}}), false},
	} {
		if got := ScopeWithin(tc.inner, tc.outer); got != tc.want {
			t.Errorf("%s: ScopeWithin = %v, want %v", name, got, tc.want)
		}
	}
}

// widenFixture stores a key named by the test for the caller to hold, and the registry.
type widenFixture struct {
	a *AccessKeys
}

func newWidenFixture() widenFixture {
	return widenFixture{NewAccessKeys(keys, Options{AdminGroup: "admins"})}
}

// hold stores a key with spec for the test's caller and returns its name.
func (f widenFixture) hold(t *testing.T, name string, spec v1.OwnedAccessKeySpec) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	if _, _, err := keys.CreateObject(context.Background(), &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (f widenFixture) create(ctx context.Context, name string, spec v1.OwnedAccessKeySpec) error {
	_, err := f.a.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, time.Now().UnixNano())}, Spec: spec}, nil, &metav1.CreateOptions{})
	return err
}

func (f widenFixture) update(t *testing.T, ctx context.Context, name string, change func(*v1.OwnedAccessKey)) error {
	t.Helper()
	cur, err := keys.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	change(cur)
	_, _, err = f.a.Update(ctx, name, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{})
	return err
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: %v, want Forbidden", what, err)
	}
}

func TestScopedKeysWriteOnlyWithinTheirScope(t *testing.T) {
	f := newWidenFixture()
	demo := &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}}
	staging := &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "staging"}}}
	for _, caller := range []struct {
		name   string
		groups []string
	}{{"alice", nil}, {"root", []string{"admins"}}} {
		held := f.hold(t, "scoped-"+caller.name, v1.OwnedAccessKeySpec{User: caller.name, Scope: demo})
		ctx := as(caller.name, held, caller.groups...)
		if err := f.create(ctx, "same-scope", v1.OwnedAccessKeySpec{User: caller.name, Scope: demo}); err != nil {
			t.Errorf("%s: a key within the scope: %v", caller.name, err)
		}
		wantForbidden(t, caller.name+": an unscoped key", f.create(ctx, "unscoped", v1.OwnedAccessKeySpec{User: caller.name}))
		wantForbidden(t, caller.name+": another cluster", f.create(ctx, "staging", v1.OwnedAccessKeySpec{User: caller.name, Scope: staging}))

		wider := f.hold(t, "wider-"+caller.name, v1.OwnedAccessKeySpec{User: caller.name})
		wantForbidden(t, caller.name+": scoping down an unscoped key", f.update(t, ctx, wider, func(k *v1.OwnedAccessKey) { k.Spec.Scope = demo }))
		_, _, err := f.a.Delete(ctx, wider, nil, &metav1.DeleteOptions{})
		wantForbidden(t, caller.name+": deleting an unscoped key", err)
		narrow := f.hold(t, "narrow-"+caller.name, v1.OwnedAccessKeySpec{User: caller.name, Scope: demo})
		wantForbidden(t, caller.name+": widening a key", f.update(t, ctx, narrow, func(k *v1.OwnedAccessKey) { k.Spec.Scope = nil }))
		if _, _, err := f.a.Delete(ctx, narrow, nil, &metav1.DeleteOptions{}); err != nil {
			t.Errorf("%s: deleting a key within the scope: %v", caller.name, err)
		}
	}
}

func TestOwnersCannotUndoOthersDisabling(t *testing.T) {
	f := newWidenFixture()
	aliceKey := f.hold(t, "alice-own", v1.OwnedAccessKeySpec{User: "alice"})
	rootKey := f.hold(t, "root-own", v1.OwnedAccessKeySpec{User: "root"})
	alice, root := as("alice", aliceKey), as("root", rootKey, "admins")

	target := f.hold(t, "alice-target", v1.OwnedAccessKeySpec{User: "alice"})
	if err := f.update(t, root, target, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = true }); err != nil {
		t.Fatal(err)
	}
	if k, _ := keys.Get(context.Background(), target); k.Annotations[DisabledByAnnotation] != "root" {
		t.Errorf("annotations %v, want %s: root", k.Annotations, DisabledByAnnotation)
	}
	wantForbidden(t, "alice enables what an admin disabled", f.update(t, alice, target, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = false }))
	wantForbidden(t, "alice claims the disabling", f.update(t, alice, target, func(k *v1.OwnedAccessKey) {
		k.Annotations[DisabledByAnnotation] = "alice"
		k.Spec.Disabled = false
	}))
	if err := f.update(t, alice, target, func(k *v1.OwnedAccessKey) { k.Spec.DisplayName = "still disabled" }); err != nil {
		t.Errorf("alice edits her disabled key: %v", err)
	}
	if k, _ := keys.Get(context.Background(), target); !k.Spec.Disabled || k.Annotations[DisabledByAnnotation] != "root" {
		t.Errorf("after alice's edit: disabled %v, annotations %v", k.Spec.Disabled, k.Annotations)
	}
	if err := f.update(t, root, target, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = false }); err != nil {
		t.Errorf("the admin enables it: %v", err)
	}

	own := f.hold(t, "alice-own-toggle", v1.OwnedAccessKeySpec{User: "alice"})
	if err := f.update(t, alice, own, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = true }); err != nil {
		t.Fatal(err)
	}
	if err := f.update(t, alice, own, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = false }); err != nil {
		t.Errorf("alice enables what she disabled: %v", err)
	}

	operator := f.hold(t, "alice-operator", v1.OwnedAccessKeySpec{User: "alice"})
	if err := keys.SetDisabled(context.Background(), operator, true); err != nil {
		t.Fatal(err)
	}
	wantForbidden(t, "alice enables what the operator disabled", f.update(t, alice, operator, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = false }))
}

func TestOwnersCannotLengthenLoginKeys(t *testing.T) {
	f := newWidenFixture()
	aliceKey := f.hold(t, "alice-login-holder", v1.OwnedAccessKeySpec{User: "alice"})
	alice := as("alice", aliceKey)
	login := f.hold(t, "alice-login", v1.OwnedAccessKeySpec{User: "alice", Type: v1.AccessKeyTypeLogin, TTL: 3600})
	for name, change := range map[string]func(*v1.OwnedAccessKey){
		"no ttl":               func(k *v1.OwnedAccessKey) { k.Spec.TTL = 0 },
		"a longer ttl":         func(k *v1.OwnedAccessKey) { k.Spec.TTL = 7200 },
		"ttlAfterLastActivity": func(k *v1.OwnedAccessKey) { k.Spec.TTLAfterLastActivity = true },
		"another type":         func(k *v1.OwnedAccessKey) { k.Spec.Type = v1.AccessKeyTypeUser; k.Spec.TTL = 0 },
	} {
		wantForbidden(t, name, f.update(t, alice, login, change))
	}
	if err := f.update(t, alice, login, func(k *v1.OwnedAccessKey) { k.Spec.TTL = 60 }); err != nil {
		t.Errorf("a shorter ttl: %v", err)
	}
}

// TestOIDCRefreshTokensAreTheProvidersOnly: nobody, an admin neither, mints an OIDC refresh
// token through the API or turns a key into one or one into another type (a User key would
// make a relying party's refresh token a bearer key); its owner still disables it, shortens it
// or deletes it (which revokes it).
func TestOIDCRefreshTokensAreTheProvidersOnly(t *testing.T) {
	f := newWidenFixture()
	provider := &v1.AccessKeyOIDCProvider{ClientID: "argocd", Nonce: "n", RedirectURI: "https://argocd.example.com/cb", Scopes: "openid offline_access"}
	refreshSpec := v1.OwnedAccessKeySpec{User: "alice", Type: v1.AccessKeyTypeOIDCRefreshToken, TTL: 3600, OIDCProvider: provider, Parent: "login-alice-x"}
	callers := []struct {
		name string
		ctx  context.Context
	}{
		{"alice", as("alice", f.hold(t, "alice-rt-holder", v1.OwnedAccessKeySpec{User: "alice"}))},
		{"an admin", as("root", f.hold(t, "root-rt-holder", v1.OwnedAccessKeySpec{User: "root"}), "admins")},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			wantForbidden(t, "minting a refresh token", f.create(c.ctx, "minted", refreshSpec))
			wantForbidden(t, "a User key with spec.oidcProvider", f.create(c.ctx, "sneaky", v1.OwnedAccessKeySpec{User: "alice", OIDCProvider: provider}))
			for name, change := range map[string]func(*v1.OwnedAccessKey){
				"into a User key":     func(k *v1.OwnedAccessKey) { k.Spec.Type = v1.AccessKeyTypeUser; k.Spec.OIDCProvider = nil },
				"into a typeless key": func(k *v1.OwnedAccessKey) { k.Spec.Type = ""; k.Spec.OIDCProvider = nil },
				"another client":      func(k *v1.OwnedAccessKey) { k.Spec.OIDCProvider.ClientID = "grafana" },
				"more scopes":         func(k *v1.OwnedAccessKey) { k.Spec.OIDCProvider.Scopes += " groups" },
				"another parent":      func(k *v1.OwnedAccessKey) { k.Spec.Parent = "login-alice-y" },
				"a longer ttl":        func(k *v1.OwnedAccessKey) { k.Spec.TTL = 7200 },
			} {
				rt := f.hold(t, "alice-rt", refreshSpec)
				if c.name == "an admin" && name == "a longer ttl" {
					continue // admins may lengthen keys, as login keys
				}
				wantForbidden(t, name, f.update(t, c.ctx, rt, change))
				if k, err := keys.Get(context.Background(), rt); err != nil || k.Spec.Type != v1.AccessKeyTypeOIDCRefreshToken || k.Spec.OIDCProvider.ClientID != "argocd" {
					t.Errorf("%s: the refused update changed the key: %+v, %v", name, k, err)
				}
			}
			user := f.hold(t, "alice-user", v1.OwnedAccessKeySpec{User: "alice"})
			wantForbidden(t, "turning a User key into a refresh token", f.update(t, c.ctx, user, func(k *v1.OwnedAccessKey) {
				k.Spec.Type = v1.AccessKeyTypeOIDCRefreshToken
				k.Spec.OIDCProvider = provider
			}))

			rt := f.hold(t, "alice-rt-own", refreshSpec)
			if err := f.update(t, c.ctx, rt, func(k *v1.OwnedAccessKey) { k.Spec.Disabled = true; k.Spec.TTL = 60 }); err != nil {
				t.Errorf("disabling and shortening a refresh token: %v", err)
			}
			if _, _, err := f.a.Delete(c.ctx, rt, nil, &metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting (revoking) a refresh token: %v", err)
			}
		})
	}
}
