package registry

import (
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// Quotas bound the keys the management API creates. The count bounds apply to the key's
// owner (spec.user, or spec.team) whoever creates it, admins too: a bound that an admin's
// create could pass would not bound the owner. The ttl cap applies to non-admins only.
type Quotas struct {
	// MaxKeysPerUser bounds the live keys of one owner other than login keys; 0: no bound.
	MaxKeysPerUser int
	// MaxLoginKeysPerUser bounds the live login keys (type Login) of one owner; 0: no bound.
	// Logins at /auth/password/login make room by deleting the oldest; a create here is
	// refused like any other.
	MaxLoginKeysPerUser int
	// MaxTTLNonAdmin caps spec.ttl of the keys a non-admin creates, or whose ttl they change:
	// a ttl above it, or none (never expires), is refused. 0: no cap.
	MaxTTLNonAdmin time.Duration
}

// quota is the bound creating k must stay within.
func (a *AccessKeys) quota(k *v1.OwnedAccessKey, now time.Time) store.Quota {
	max := a.opts.MaxKeysPerUser
	if k.Spec.Type == v1.AccessKeyTypeLogin {
		max = a.opts.MaxLoginKeysPerUser
	}
	return store.PerOwner(k, max, now)
}

// quotaError is the 403 of a create past its owner's quota: which bound, and what to do.
func (a *AccessKeys) quotaError(k *v1.OwnedAccessKey) error {
	what, max := "access keys (login keys not counted)", a.opts.MaxKeysPerUser
	if k.Spec.Type == v1.AccessKeyTypeLogin {
		what, max = "login keys", a.opts.MaxLoginKeysPerUser
	}
	return apierrors.NewForbidden(resource, k.Name, fmt.Errorf(
		"quota exceeded: %s already has %d live %s, the most allowed; delete one first (kubectl delete ownedaccesskeys.management.loft.sh NAME) or let one expire",
		accesskey.User(k), max, what))
}

// checkTTL refuses, for a non-admin, a spec.ttl above the cap or none, on a create (cur nil)
// or an update that changes the ttl: keys made before the cap, or by an admin, stay editable.
func (a *AccessKeys) checkTTL(c Caller, k, cur *v1.OwnedAccessKey) error {
	max := int64(a.opts.MaxTTLNonAdmin / time.Second)
	if c.Admin || max <= 0 || (cur != nil && k.Spec.TTL == cur.Spec.TTL) {
		return nil
	}
	if k.Spec.TTL > 0 && k.Spec.TTL <= max {
		return nil
	}
	msg := fmt.Sprintf("must be at most %d seconds (%s) for keys created by non-admins", max, a.opts.MaxTTLNonAdmin)
	if k.Spec.TTL == 0 {
		msg += "; 0 (never expires) is not allowed"
	}
	return apierrors.NewInvalid(kind, k.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "ttl"), k.Spec.TTL, msg)})
}
