package registry

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// TestParentIsKeygates: nobody, admins included, creates a key with spec.parent (which would
// bind it to someone else's session), nor sets, changes or clears a key's parent (which would
// let a CLI key escape its session's end); a child's other fields stay its owner's to edit.
func TestParentIsKeygates(t *testing.T) {
	f := newWidenFixture()
	ident := &v1.AccessKeyIdentity{UserID: "sub-sue", Username: "okta:sue", Groups: []string{"dev"}, Connector: "okta", ConnectorData: []byte(sealedRT)}
	session := f.hold(t, "sue-session", v1.OwnedAccessKeySpec{User: "okta:sue", Type: v1.AccessKeyTypeLogin, TTL: 3600, Groups: []string{"dev"}, Identity: ident})
	child := f.hold(t, "sue-cli", v1.OwnedAccessKeySpec{User: "okta:sue", Type: v1.AccessKeyTypeLogin, TTL: 3600, Parent: session})
	callers := map[string]context.Context{
		"the session's user": as("okta:sue", child, "dev"),
		"an admin":           as("root", f.hold(t, "root-holder", v1.OwnedAccessKeySpec{User: "root"}), "admins"),
	}
	for who, ctx := range callers {
		t.Run(who, func(t *testing.T) {
			for name, spec := range map[string]v1.OwnedAccessKeySpec{
				"a login key bound to the session": {User: "okta:sue", Type: v1.AccessKeyTypeLogin, TTL: 60, Parent: session},
				"a User key naming a parent":       {User: "okta:sue", Type: v1.AccessKeyTypeUser, Parent: session},
			} {
				err := f.create(ctx, "sneaky", spec)
				wantForbidden(t, name, err)
				if err != nil && !strings.Contains(err.Error(), "spec.parent: only keygate sets a key's parent") {
					t.Errorf("%s: %v; want the reason", name, err)
				}
			}
			own := f.hold(t, "sue-own", v1.OwnedAccessKeySpec{User: "okta:sue", Type: v1.AccessKeyTypeUser})
			wantForbidden(t, "giving a key a parent", f.update(t, ctx, own, func(k *v1.OwnedAccessKey) { k.Spec.Parent = session }))
			wantForbidden(t, "clearing a child's parent", f.update(t, ctx, child, func(k *v1.OwnedAccessKey) { k.Spec.Parent = "" }))
			wantForbidden(t, "moving a child to another parent", f.update(t, ctx, child, func(k *v1.OwnedAccessKey) { k.Spec.Parent = own }))
			if err := f.update(t, ctx, child, func(k *v1.OwnedAccessKey) { k.Spec.DisplayName = "laptop" }); err != nil {
				t.Errorf("renaming the child: %v", err)
			}
		})
	}
	if k, err := keys.Get(context.Background(), child); err != nil || k.Spec.Parent != session {
		t.Errorf("the child after the refused updates: %+v, %v", k, err)
	}
}
