package accesskey

import (
	"fmt"
	"slices"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// OwnerUIDAnnotation records, on a key made for a user of the user store, that user's UID.
// keystore sets it whenever it creates a key (the management API, /auth/password/login,
// `keystore create-key`), never from what a client sends, and keeps it on every update. It is
// what tells a key of a store user from a key of an external identity with the same name, and a
// key of a deleted user from one of a user re-created under the same name.
const OwnerUIDAnnotation = "keygate.dev/owner-uid"

// OwnerUID is the UID of the store user k was made for, "" when it was made for an external
// identity (or a team, or a user created before users had UIDs).
func OwnerUID(k *v1.OwnedAccessKey) string { return k.Annotations[OwnerUIDAnnotation] }

// SetOwnerUID records uid as the owner's UID of k, or removes the record when uid is "".
func SetOwnerUID(k *v1.OwnedAccessKey, uid string) {
	if uid == "" {
		delete(k.Annotations, OwnerUIDAnnotation)
		return
	}
	if k.Annotations == nil {
		k.Annotations = map[string]string{}
	}
	k.Annotations[OwnerUIDAnnotation] = uid
}

// Owner is what the user store says, now, of the user (spec.user) of a key.
type Owner struct {
	// Known: the user store has the user. Keys of users it does not have are keys of an
	// external identity provider's users, and carry their own groups only.
	Known bool
	// UID is the user's UID ("" for users created before users had UIDs).
	UID      string
	Disabled bool
	// Groups are the user's groups in the store.
	Groups []string
}

// OwnerProblem is why a key's owner makes it unusable; OwnerOK when it does not.
type OwnerProblem string

// The owner problems, each a reason in logs.
const (
	OwnerOK OwnerProblem = ""
	// OwnerDisabled: the user is disabled in the store.
	OwnerDisabled OwnerProblem = "user disabled"
	// OwnerDeleted: the key was made for a store user who no longer exists.
	OwnerDeleted OwnerProblem = "user deleted"
	// OwnerReplaced: the key was made for a store user who was deleted; the store now has
	// another user of the same name.
	OwnerReplaced OwnerProblem = "user re-created"
	// OwnerExternal: the key was made for an external identity, and the store now has a user of
	// the same name. Failing closed: nothing says the two are the same person.
	OwnerExternal OwnerProblem = "external identity now in the user store"
)

// CheckOwner judges k, a key with spec.user, against what the store says of its user now. Team
// keys act as their team, whoever holds them, and have no owner to check.
func CheckOwner(k *v1.OwnedAccessKey, o Owner) OwnerProblem {
	uid := OwnerUID(k)
	switch {
	case !o.Known && uid != "":
		return OwnerDeleted
	case !o.Known:
		return OwnerOK // an external identity, as the key was made for
	case o.Disabled:
		return OwnerDisabled
	case uid == o.UID:
		return OwnerOK
	case uid == "":
		return OwnerExternal
	}
	return OwnerReplaced
}

// Message is what a client refused for p is told.
func (p OwnerProblem) Message(k *v1.OwnedAccessKey) string {
	switch p {
	case OwnerDisabled:
		return fmt.Sprintf("the user %q of access key %q is disabled", k.Spec.User, k.Name)
	case OwnerDeleted:
		return fmt.Sprintf("the user %q of access key %q no longer exists", k.Spec.User, k.Name)
	case OwnerReplaced:
		return fmt.Sprintf("access key %q was made for an earlier user %q, who was deleted; create a new key", k.Name, k.Spec.User)
	case OwnerExternal:
		return fmt.Sprintf("access key %q was made for an external identity %q before a user of that name was added to the user store; create a new key", k.Name, k.Spec.User)
	}
	return ""
}

// AsOwned is k as its owner lets it act. For a user in the store, the store's groups are the
// truth: spec.groups keeps only the groups the user still has, so that a group taken from a user
// leaves every one of their keys at once, whatever the key copied (login keys once did, and
// owners may copy their groups into their keys). Keys of external identities keep their own
// groups. k is never modified; the result is k itself when nothing is dropped.
func AsOwned(k *v1.OwnedAccessKey, o Owner) *v1.OwnedAccessKey {
	if !o.Known || len(k.Spec.Groups) == 0 {
		return k
	}
	kept := make([]string, 0, len(k.Spec.Groups))
	for _, g := range k.Spec.Groups {
		if slices.Contains(o.Groups, g) {
			kept = append(kept, g)
		}
	}
	if len(kept) == len(k.Spec.Groups) {
		return k
	}
	// A shallow copy is enough: only Spec.Groups differs, and k's slices are not written.
	out := *k
	out.Spec.Groups = kept
	return &out
}
