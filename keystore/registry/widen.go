package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// No key widens itself: whoever holds a key can create, change or delete only keys that do no
// more than it does. The rules here come on top of ownership (Caller.MayHold):
//   - a scoped key (an admin's too) writes and deletes only keys whose scope is within its own;
//   - an owner cannot undo a disabling they did not make themselves (an admin's, or the
//     operator's with `keystore disable-key`): DisabledByAnnotation records who disabled a key;
//   - an owner cannot lengthen the life of a login key: its type, ttl and ttlAfterLastActivity
//     are the login endpoint's to set.

// DisabledByAnnotation records who disabled a key: the user (or loft:team:<team>) of the
// request that set spec.disabled. The server sets it; a client's value is never kept.
const DisabledByAnnotation = "keygate.dev/disabled-by"

// requestKey is the access key the request was made with, or nil when the request names none
// (the apiserver's own loopback client). A key deleted meanwhile forbids the write of name, a
// resource.
func requestKey(ctx context.Context, keys Keys, c Caller, res schema.GroupResource, name string) (*v1.OwnedAccessKey, error) {
	if c.Key == "" {
		return nil, nil
	}
	own, err := keys.Get(ctx, c.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierrors.NewForbidden(res, name, fmt.Errorf("the access key of this request (%q) no longer exists", c.Key))
	}
	if err != nil {
		return nil, storeError(err)
	}
	return own, nil
}

// withinRequestKey refuses keys (the one written and, on an update or delete, the one it was)
// whose scope reaches beyond the scope of the request's own key.
func (a *AccessKeys) withinRequestKey(ctx context.Context, c Caller, ks ...*v1.OwnedAccessKey) error {
	own, err := requestKey(ctx, a.keys, c, resource, ks[0].Name)
	if err != nil || own == nil {
		return err
	}
	for _, k := range ks {
		if k != nil && !ScopeWithin(k.Spec.Scope, own.Spec.Scope) {
			return apierrors.NewForbidden(resource, ks[0].Name, fmt.Errorf(
				"spec.scope: the access key of this request (%q) is scoped, and may only write or delete keys whose every scope entry is one of its own", own.Name))
		}
	}
	return nil
}

// ScopeWithin reports whether every request inner allows, outer allows too. A scope allows
// what any one of its entries allows (extauthz/decide), so a scope whose every entry is also an
// entry of outer is within it. The check is conservative: two entries that overlap but are
// written differently do not count. No scope (or an empty one) allows everything: it is within
// only another empty one.
func ScopeWithin(inner, outer *v1.AccessKeyScope) bool {
	if scopeEmpty(outer) {
		return true
	}
	if scopeEmpty(inner) {
		return false
	}
	return subset(inner.Roles, outer.Roles) && subset(inner.Projects, outer.Projects) &&
		subset(inner.Spaces, outer.Spaces) && subset(inner.VirtualClusters, outer.VirtualClusters) &&
		subset(inner.Clusters, outer.Clusters) && subset(inner.Rules, outer.Rules) &&
		(!inner.AllowLoftCLI || outer.AllowLoftCLI)
}

func subset[T any](inner, outer []T) bool {
	for _, e := range inner {
		if !slices.ContainsFunc(outer, func(o T) bool { return apiequality.Semantic.DeepEqual(e, o) }) {
			return false
		}
	}
	return true
}

func scopeEmpty(s *v1.AccessKeyScope) bool {
	return s == nil || (len(s.Projects) == 0 && len(s.Spaces) == 0 && len(s.VirtualClusters) == 0 &&
		len(s.Clusters) == 0 && len(s.Roles) == 0 && len(s.Rules) == 0 && !s.AllowLoftCLI)
}

// recordDisabler sets DisabledByAnnotation: kept from cur while the key stays disabled, set to
// c when c disables it, gone when it is enabled. cur is nil on a create.
func recordDisabler(c Caller, k, cur *v1.OwnedAccessKey) {
	delete(k.Annotations, DisabledByAnnotation)
	switch {
	case !k.Spec.Disabled:
	case cur != nil && cur.Spec.Disabled:
		// Still disabled: by whoever did it. Disabled outside the management API (`keystore
		// disable-key`), it has no annotation: the operator's.
		if by := cur.Annotations[DisabledByAnnotation]; by != "" {
			if k.Annotations == nil {
				k.Annotations = map[string]string{}
			}
			k.Annotations[DisabledByAnnotation] = by
		}
	default:
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[DisabledByAnnotation] = c.name()
	}
}

// mayChange refuses what only an admin may change in an existing key: undoing someone else's
// disabling, and lengthening a login key's life.
func (c Caller) mayChange(k, cur *v1.OwnedAccessKey) string {
	if c.Admin {
		return ""
	}
	if cur.Spec.Disabled && !k.Spec.Disabled && cur.Annotations[DisabledByAnnotation] != c.name() {
		by := cur.Annotations[DisabledByAnnotation]
		if by == "" {
			by = "the operator"
		}
		return fmt.Sprintf("spec.disabled: this key was disabled by %s; only they or an admin may enable it", by)
	}
	if cur.Spec.Type == v1.AccessKeyTypeLogin || cur.Spec.Type == v1.AccessKeyTypeOIDCRefreshToken {
		lengthened := k.Spec.Type != cur.Spec.Type || k.Spec.TTL <= 0 || k.Spec.TTL > cur.Spec.TTL ||
			(k.Spec.TTLAfterLastActivity && !cur.Spec.TTLAfterLastActivity)
		if lengthened {
			return fmt.Sprintf("spec: the type, ttl and ttlAfterLastActivity of a %s key are the server's: an owner may shorten its ttl, or delete it", cur.Spec.Type)
		}
	}
	return ""
}

// name is the user name the caller acts as.
func (c Caller) name() string {
	if c.User != "" {
		return c.User
	}
	return TeamUserPrefix + c.Team
}

// providerOwned refuses, to everyone (admins too), an OIDC refresh token made or remade by
// hand: only keystore/oidc creates keys of type OIDCRefreshToken, and their spec.oidcProvider,
// parent and owner say what its client may get tokens for. A key made one by hand would be a
// refresh token its maker chose the grant of; one turned into another type would make a
// relying party's refresh token a bearer key at the edge (extauthz refuses refresh tokens).
// Their other fields (disabled, display name, a shorter ttl) stay editable. cur is nil on a
// create.
func providerOwned(k, cur *v1.OwnedAccessKey) string {
	isRT := func(x *v1.OwnedAccessKey) bool {
		return x.Spec.Type == v1.AccessKeyTypeOIDCRefreshToken || x.Spec.OIDCProvider != nil
	}
	switch {
	case cur == nil && isRT(k):
		return "spec.type: keys of type OIDCRefreshToken (and spec.oidcProvider) are made only by the OIDC provider, when a client signs a user in"
	case cur == nil:
		return ""
	case isRT(k) != isRT(cur) || k.Spec.Type != cur.Spec.Type && isRT(cur):
		return "spec.type: a key cannot be turned into an OIDC refresh token, nor a refresh token into another type"
	case isRT(cur) && (!apiequality.Semantic.DeepEqual(k.Spec.OIDCProvider, cur.Spec.OIDCProvider) ||
		k.Spec.Parent != cur.Spec.Parent || k.Spec.User != cur.Spec.User || k.Spec.Team != cur.Spec.Team):
		return "spec: the oidcProvider, parent, user and team of an OIDC refresh token are the OIDC provider's"
	}
	return ""
}
