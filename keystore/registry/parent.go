package registry

import (
	"fmt"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// parentIsKeygates refuses, to everyone (admins too), a spec.parent a client chose: keygate
// alone sets it, on an OIDC refresh token (the session it was issued from) and on a single
// sign-on identity's CLI login key (the session whose identity it follows and with which it
// ends: keystore/store's family). A client that could set it would make its key follow, and
// die with, someone else's session, or a CLI key outlive its own by clearing it. cur is nil on
// a create.
func parentIsKeygates(k, cur *v1.OwnedAccessKey) string {
	switch {
	case cur == nil && k.Spec.Parent != "":
		return fmt.Sprintf("spec.parent: only keygate sets a key's parent (the session a CLI login or an OIDC refresh token was made from); create the key without it (got %q)", k.Spec.Parent)
	case cur != nil && k.Spec.Parent != cur.Spec.Parent:
		return fmt.Sprintf("spec.parent: a key's parent is keygate's and cannot change (it is %q)", cur.Spec.Parent)
	}
	return ""
}
