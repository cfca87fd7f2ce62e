package registry

import (
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// The server's fields of an OwnedAccessKey are the server's, as k8s.io/apiserver's create and
// update strategies (rest.BeforeCreate, rest.BeforeUpdate) keep them: whatever a client sends
// in metadata.creationTimestamp, uid, generation or deletionTimestamp, in status, or in the
// annotations the edge owns, is replaced by the server's own. A key's age counts from the
// server's clock, so a client cannot make a key with a ttl live longer by dating it ahead.

// serverAnnotations are the annotations the edge owns. DisabledByAnnotation is kept by
// recordDisabler, which also sets it.
var serverAnnotations = []string{CreatedByAnnotation}

// resetServerFields clears what the store sets on a create (uid, creationTimestamp) and what
// a new object cannot have.
func resetServerFields(k *v1.OwnedAccessKey) {
	k.UID = ""
	k.CreationTimestamp = metav1.Time{}
	k.DeletionTimestamp = nil
	k.DeletionGracePeriodSeconds = nil
	k.Generation = 1
	k.ResourceVersion = ""
	k.Status = v1.OwnedAccessKeyStatus{}
	// Only a single sign-on login sets connectorData (the IdP's refresh token): a client that
	// could would choose what the identity refresh sends to the IdP.
	accesskey.RedactConnectorData(k)
}

// carryServerFields puts cur's server fields into k, its update. The generation counts changes
// of the spec, as Kubernetes counts them.
func carryServerFields(k, cur *v1.OwnedAccessKey) {
	k.UID = cur.UID
	k.CreationTimestamp = cur.CreationTimestamp
	k.DeletionTimestamp = cur.DeletionTimestamp
	k.DeletionGracePeriodSeconds = cur.DeletionGracePeriodSeconds
	k.Generation = cur.Generation
	carryIdentity(k, cur)
	if !apiequality.Semantic.DeepEqual(k.Spec, cur.Spec) {
		k.Generation++
	}
	k.Status = cur.Status
	for _, a := range serverAnnotations {
		v, ok := cur.Annotations[a]
		switch {
		case ok && k.Annotations == nil:
			k.Annotations = map[string]string{a: v}
		case ok:
			k.Annotations[a] = v
		default:
			delete(k.Annotations, a)
		}
	}
}

// carryIdentity keeps the identity of a single sign-on key as the server has it: its identity
// and connectorData are the identity provider's word, refreshed by keystore alone (clients never
// see connectorData, so an update of theirs would otherwise drop it). Other keys' identity is
// their owner's to write, except connectorData.
func carryIdentity(k, cur *v1.OwnedAccessKey) {
	if accesskey.FromSSO(cur) {
		k.Spec.Identity = cur.Spec.Identity.DeepCopy()
		k.Spec.IdentityRefresh = cur.Spec.IdentityRefresh.DeepCopy()
		return
	}
	accesskey.RedactConnectorData(k)
}
