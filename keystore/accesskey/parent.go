package accesskey

import (
	"slices"

	apiequality "k8s.io/apimachinery/pkg/api/equality"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// A single sign-on identity's CLI login key is a child of the identity's browser session key:
// the session (a Login key with connectorData) alone holds the identity provider's refresh
// token and is refreshed; the child acts as the session does, always. Loft's spec.parent names
// the session; keystore/store keeps an index of parents and children with the keys, so that
// every change of a session reaches its children in the same atomic step (FollowParent), and
// deleting a session deletes them.

// Annotations keystore sets on a child that its parent disabled. DisabledByParent is a
// disabler no caller is (keystore/registry's DisabledByAnnotation), so only an admin enables it
// while the parent stays disabled.
const (
	DisabledByAnnotation  = "keygate.dev/disabled-by"
	DisabledByParent      = "keygate:parent-session"
	ParentStateAnnotation = "keygate.dev/parent-session"
	parentDisabledMessage = "its session key was disabled"
	parentOutlivedMessage = "its session key has expired"
)

// BoundToParent reports whether k is a child whose life and identity follow its parent: a
// Login key with spec.parent. An OIDC refresh token's spec.parent only says which session it
// was issued from (keystore/oidc judges the session at each refresh); it is no child.
func BoundToParent(k *v1.OwnedAccessKey) bool {
	return k.Spec.Type == v1.AccessKeyTypeLogin && k.Spec.Parent != ""
}

// FollowParent makes child act as parent: the parent's user, groups and identity (without
// connectorData, the parent's alone), an expiry no later than the parent's, and disabled while
// the parent is (enabled again with it, unless someone else disabled the child). It reports
// whether child changed. Pure: the store calls it on every change of a parent, and on a
// child's creation.
func FollowParent(child, parent *v1.OwnedAccessKey) bool {
	before := child.DeepCopy()
	child.Spec.User, child.Spec.Team = parent.Spec.User, parent.Spec.Team
	child.Spec.Groups = slices.Clone(parent.Spec.Groups)
	child.Spec.Identity = parent.Spec.Identity.DeepCopy()
	RedactConnectorData(child)
	child.Spec.IdentityRefresh = parent.Spec.IdentityRefresh.DeepCopy()
	capExpiry(child, parent)
	switch {
	case parent.Spec.Disabled:
		disableByParent(child, parentDisabledMessage)
	case child.Spec.Disabled && child.Annotations[DisabledByAnnotation] == DisabledByParent &&
		child.Annotations[ParentStateAnnotation] == parentDisabledMessage:
		child.Spec.Disabled = false
		delete(child.Annotations, DisabledByAnnotation)
		delete(child.Annotations, ParentStateAnnotation)
	}
	return !apiequality.Semantic.DeepEqual(before, child)
}

// capExpiry bounds child's life by parent's creation + ttl: never later than the parent's
// expiry, which ttlAfterLastActivity only moves later. A child that would already be past it is
// disabled (a ttl of 0 would mean never).
func capExpiry(child, parent *v1.OwnedAccessKey) {
	child.Spec.TTLAfterLastActivity = false
	if parent.Spec.TTL <= 0 {
		return
	}
	end := parent.CreationTimestamp.Unix() + parent.Spec.TTL
	left := end - child.CreationTimestamp.Unix()
	if left <= 0 || parent.CreationTimestamp.IsZero() || child.CreationTimestamp.IsZero() {
		child.Spec.TTL = 1
		disableByParent(child, parentOutlivedMessage)
		return
	}
	if child.Spec.TTL <= 0 || child.Spec.TTL > left {
		child.Spec.TTL = left
	}
}

func disableByParent(child *v1.OwnedAccessKey, why string) {
	if child.Spec.Disabled {
		return // whoever disabled it keeps it so
	}
	child.Spec.Disabled = true
	if child.Annotations == nil {
		child.Annotations = map[string]string{}
	}
	child.Annotations[DisabledByAnnotation] = DisabledByParent
	child.Annotations[ParentStateAnnotation] = why
}
