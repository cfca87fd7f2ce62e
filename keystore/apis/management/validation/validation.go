// Package validation checks management.loft.sh/v1 objects before they are stored, in the style of
// Kubernetes' pkg/apis/*/validation: pure functions that return every problem at once, each
// naming the exact field, so the API server can answer 422 with causes kubectl prints well.
package validation

import (
	"fmt"
	"slices"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// MinKeyLength is the shortest client-supplied spec.key accepted. Keys are stored as digests, so
// a short key could be found by guessing; keystore/store refuses shorter keys as well.
const MinKeyLength = 32

// KeyChangeForbidden is the message for a spec.key in an update.
const KeyChangeForbidden = "the key of an existing access key cannot be changed; create a new key"

// knownTypes are the key types of Loft; "" is allowed too.
var knownTypes = []v1.AccessKeyType{
	v1.AccessKeyTypeLogin, v1.AccessKeyTypeUser, v1.AccessKeyTypeOther, v1.AccessKeyTypeReset,
	v1.AccessKeyTypeOIDCRefreshToken, v1.AccessKeyTypeNetworkPeer, v1.AccessKeyTypeWorkspace,
}

// ValidateOwnedAccessKey validates a key about to be created.
func ValidateOwnedAccessKey(k *v1.OwnedAccessKey) field.ErrorList {
	// Access keys are cluster-scoped and their names appear in paths and in the
	// Impersonate-Extra-Loft-Access-Key header, hence DNS subdomains.
	allErrs := apivalidation.ValidateObjectMeta(&k.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateSpec(&k.Spec, field.NewPath("spec"), true)...)
}

// ValidateOwnedAccessKeyUpdate validates an update of oldK to newK.
func ValidateOwnedAccessKeyUpdate(newK, oldK *v1.OwnedAccessKey) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := apivalidation.ValidateObjectMeta(&newK.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metaPath)
	allErrs = append(allErrs, apivalidation.ValidateObjectMetaUpdate(&newK.ObjectMeta, &oldK.ObjectMeta, metaPath)...)
	return append(allErrs, validateSpec(&newK.Spec, field.NewPath("spec"), false)...)
}

func validateSpec(spec *v1.OwnedAccessKeySpec, fldPath *field.Path, create bool) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case spec.User == "" && spec.Team == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("user"), "a key belongs to a user or a team: set spec.user or spec.team"))
	case spec.User != "" && spec.Team != "":
		allErrs = append(allErrs, field.Invalid(fldPath.Child("user"), spec.User, "may not be set together with spec.team: a key belongs to a user or a team"))
	}
	allErrs = append(allErrs, validateKey(spec.Key, fldPath.Child("key"), create)...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(spec.TTL, fldPath.Child("ttl"))...)
	if spec.Type != v1.AccessKeyTypeNone && !slices.Contains(knownTypes, spec.Type) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("type"), spec.Type, knownTypes))
	}
	if spec.Scope != nil {
		allErrs = append(allErrs, ValidateAccessKeyScope(spec.Scope, fldPath.Child("scope"))...)
	}
	return allErrs
}

// validateKey never puts the key into an error: errors end up in responses, events and logs.
func validateKey(key string, fldPath *field.Path, create bool) field.ErrorList {
	switch {
	case key == "":
		return nil
	case !create:
		// Only the digest is stored, so the key cannot be compared with or replaced in place.
		return field.ErrorList{field.Forbidden(fldPath, KeyChangeForbidden)}
	case len(key) < MinKeyLength:
		return field.ErrorList{field.Invalid(fldPath, field.OmitValueType{},
			fmt.Sprintf("must be at least %d characters long (it has %d); leave it empty to have one generated", MinKeyLength, len(key)))}
	}
	return nil
}
