package accesskey

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func ownedKey(uid string, groups ...string) *v1.OwnedAccessKey {
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "k"}, Spec: v1.OwnedAccessKeySpec{User: "alice", Groups: groups}}
	SetOwnerUID(k, uid)
	return k
}

func TestCheckOwner(t *testing.T) {
	tests := map[string]struct {
		key   *v1.OwnedAccessKey
		owner Owner
		want  OwnerProblem
	}{
		"external identity, not in the store":    {ownedKey(""), Owner{}, OwnerOK},
		"store user, same uid":                   {ownedKey("u1"), Owner{Known: true, UID: "u1"}, OwnerOK},
		"store user from before uids, no uid":    {ownedKey(""), Owner{Known: true}, OwnerOK},
		"store user deleted":                     {ownedKey("u1"), Owner{}, OwnerDeleted},
		"store user deleted and re-created":      {ownedKey("u1"), Owner{Known: true, UID: "u2"}, OwnerReplaced},
		"external identity, now a store user":    {ownedKey(""), Owner{Known: true, UID: "u2"}, OwnerExternal},
		"store user disabled":                    {ownedKey("u1"), Owner{Known: true, UID: "u1", Disabled: true}, OwnerDisabled},
		"a uid never matches a user without one": {ownedKey("u1"), Owner{Known: true}, OwnerReplaced},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := CheckOwner(tc.key, tc.owner); got != tc.want {
				t.Errorf("CheckOwner = %q, want %q", got, tc.want)
			}
			if msg := tc.want.Message(tc.key); (msg == "") != (tc.want == OwnerOK) {
				t.Errorf("message %q for %q", msg, tc.want)
			}
		})
	}
}

// A store user's keys carry the user's current groups only; an external identity's keys carry
// their own.
func TestAsOwned(t *testing.T) {
	k := ownedKey("u1", "dev", "prod")
	got := AsOwned(k, Owner{Known: true, UID: "u1", Groups: []string{"dev"}})
	if !slices.Equal(got.Spec.Groups, []string{"dev"}) {
		t.Errorf("groups = %v, want [dev]: prod was taken from the user", got.Spec.Groups)
	}
	if !slices.Equal(k.Spec.Groups, []string{"dev", "prod"}) {
		t.Errorf("AsOwned modified the key: %v", k.Spec.Groups)
	}
	if g := Groups(got, []string{"dev"}); !slices.Equal(g, []string{"dev", "loft:user:alice", "system:authenticated"}) {
		t.Errorf("identity groups = %v", g)
	}
	if ext := AsOwned(k, Owner{}); ext != k {
		t.Errorf("an external identity's key changed: %v", ext.Spec.Groups)
	}
}

func TestSetOwnerUID(t *testing.T) {
	k := &v1.OwnedAccessKey{}
	SetOwnerUID(k, "u1")
	if OwnerUID(k) != "u1" {
		t.Errorf("OwnerUID = %q", OwnerUID(k))
	}
	SetOwnerUID(k, "")
	if _, has := k.Annotations[OwnerUIDAnnotation]; has {
		t.Errorf("annotation left after SetOwnerUID(\"\"): %v", k.Annotations)
	}
}
