package sso_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// TestRefreshReachesChildren: the CLI key of a single sign-on identity is a child of its
// session (keystore/auth child.go). The refresh pass refreshes only the session, with its
// refresh token, and the child takes up the IdP's new groups in the same step; the IdP's
// revocation disables both.
func TestRefreshReachesChildren(t *testing.T) {
	ctx := context.Background()
	name := unique("dave")
	e := newEdge(t, []testidpUser{user(name)}, nil)
	noErr(t, e.idp.SetGroups("sub-"+name, []string{"dev", "ops"}))
	if resp, body := e.signIn(t, e.browser, name, "idp-password"); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s\n%s", resp.Status, body)
	}
	parent := oneKey(t, name)
	_, child, err := keys.CreateObject(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "cli-" + parent.Name},
		Spec: v1.OwnedAccessKeySpec{User: name, Type: v1.AccessKeyTypeLogin, TTL: 3600, Parent: parent.Name}})
	if err != nil {
		t.Fatal(err)
	}

	noErr(t, e.idp.SetGroups("sub-"+name, []string{"dev"}))
	e.clock.Add(61 * time.Second)
	if n := e.h.RefreshDue(ctx); n != 1 {
		t.Errorf("the pass refreshed %d keys, want 1 (the session; its child has no refresh token of its own)", n)
	}
	got, err := keys.Get(ctx, child.Name)
	if err != nil || !slices.Equal(got.Spec.Groups, []string{"dev"}) || !slices.Equal(got.Spec.Identity.Groups, []string{"dev"}) || got.Spec.Disabled {
		t.Fatalf("the child after the session's refresh: %+v, %v; want the IdP's new groups", got, err)
	}

	noErr(t, e.idp.Revoke("sub-"+name))
	e.clock.Add(61 * time.Second)
	e.h.RefreshDue(ctx)
	got, err = keys.Get(ctx, child.Name)
	if err != nil || !got.Spec.Disabled || got.Annotations[accesskey.DisabledByAnnotation] != accesskey.DisabledByParent ||
		!strings.Contains(got.Annotations[accesskey.ParentStateAnnotation], "disabled") {
		t.Fatalf("the child after the IdP's revocation: %+v %v, %v; want it disabled by its session", got.Spec, got.Annotations, err)
	}
}
