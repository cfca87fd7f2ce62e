package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// ownerUIDs is the user store as these tests see it: alice and bob are store users.
func ownerUIDs(_ context.Context, name string) (string, error) {
	return map[string]string{"alice": "alice-uid", "bob": "bob-uid"}[name], nil
}

// The owner's UID on a key is the server's: set from the user store at creation whatever the
// client sent, kept through updates that drop or change it, and recorded anew only when the key
// is given to another user.
func TestOwnerUIDIsServerOwned(t *testing.T) {
	a := NewAccessKeys(keys, Options{AdminGroup: "admins", OwnerUID: ownerUIDs})
	ctx := as("root", "", "admins")
	create := func(spec v1.OwnedAccessKeySpec, forged string) *v1.OwnedAccessKey {
		t.Helper()
		k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("owner-%d", time.Now().UnixNano())}, Spec: spec}
		if forged != "" {
			accesskey.SetOwnerUID(k, forged)
		}
		obj, err := a.Create(ctx, k, nil, &metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*v1.OwnedAccessKey)
	}
	for name, tc := range map[string]struct {
		spec   v1.OwnedAccessKeySpec
		forged string
		want   string
	}{
		"store user":                       {v1.OwnedAccessKeySpec{User: "alice"}, "", "alice-uid"},
		"store user, client sent another":  {v1.OwnedAccessKeySpec{User: "alice"}, "bob-uid", "alice-uid"},
		"external identity, client forged": {v1.OwnedAccessKeySpec{User: "carol"}, "alice-uid", ""},
		"team":                             {v1.OwnedAccessKeySpec{Team: "platform"}, "alice-uid", ""},
	} {
		if got := accesskey.OwnerUID(create(tc.spec, tc.forged)); got != tc.want {
			t.Errorf("%s: owner uid %q, want %q", name, got, tc.want)
		}
	}

	k := create(v1.OwnedAccessKeySpec{User: "alice"}, "")
	update := func(mutate func(*v1.OwnedAccessKey)) *v1.OwnedAccessKey {
		t.Helper()
		cur, err := keys.Get(context.Background(), k.Name)
		if err != nil {
			t.Fatal(err)
		}
		mutate(cur)
		obj, _, err := a.Update(ctx, k.Name, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*v1.OwnedAccessKey)
	}
	if got := accesskey.OwnerUID(update(func(k *v1.OwnedAccessKey) { k.Annotations = nil })); got != "alice-uid" {
		t.Errorf("after an update without annotations: owner uid %q, want alice-uid kept", got)
	}
	if got := accesskey.OwnerUID(update(func(k *v1.OwnedAccessKey) { accesskey.SetOwnerUID(k, "bob-uid") })); got != "alice-uid" {
		t.Errorf("after an update forging another uid: owner uid %q, want alice-uid kept", got)
	}
	if got := accesskey.OwnerUID(update(func(k *v1.OwnedAccessKey) { k.Spec.User = "bob" })); got != "bob-uid" {
		t.Errorf("after giving the key to bob: owner uid %q, want bob-uid", got)
	}
}
