package validation

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Limits on a user's fields, the user store's own (keystore/users), so that what the API accepts
// the store stores.
const (
	maxDisplayNameLength = 256
	maxEmailLength       = 254
	maxGroupLength       = 256
)

// ReservedGroupPrefixes start groups the edge and Kubernetes give meaning to: the edge
// impersonates users with their groups, so "system:masters" would make a cluster admin and
// "loft:team:x" a false member of team x.
var ReservedGroupPrefixes = []string{"system:", "loft:"}

// ValidateUser validates a user about to be created. User names are DNS-1123 labels: they are
// Redis keys of the user store and part of loft:user:<name>.
func ValidateUser(u *v1.User) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&u.ObjectMeta, false, apivalidation.NameIsDNSLabel, field.NewPath("metadata"))
	return append(allErrs, validateUserSpec(u.Name, &u.Spec, field.NewPath("spec"))...)
}

// ValidateUserUpdate validates an update of oldU to newU.
func ValidateUserUpdate(newU, oldU *v1.User) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := apivalidation.ValidateObjectMeta(&newU.ObjectMeta, false, apivalidation.NameIsDNSLabel, metaPath)
	allErrs = append(allErrs, apivalidation.ValidateObjectMetaUpdate(&newU.ObjectMeta, &oldU.ObjectMeta, metaPath)...)
	return append(allErrs, validateUserSpec(newU.Name, &newU.Spec, field.NewPath("spec"))...)
}

func validateUserSpec(name string, spec *v1.UserSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateDisplayName(spec.DisplayName, fldPath.Child("displayName"))
	// The store has one name per user: the login name is the object's name.
	if spec.Username != "" && spec.Username != name {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("username"), spec.Username, "must be metadata.name (or empty): a user logs in with the object's name"))
	}
	if spec.Subject != "" && spec.Subject != name {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("subject"), spec.Subject, "must be metadata.name (or empty)"))
	}
	if spec.Email != "" {
		if len(spec.Email) > maxEmailLength {
			allErrs = append(allErrs, field.TooLong(fldPath.Child("email"), "", maxEmailLength))
		} else if a, err := mail.ParseAddress(spec.Email); err != nil || a.Name != "" || a.Address != spec.Email {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("email"), spec.Email, "not a plain email address such as alice@example.com"))
		}
	}
	return append(allErrs, ValidateGroups(spec.Groups, fldPath.Child("groups"))...)
}

func validateDisplayName(s string, fldPath *field.Path) field.ErrorList {
	if len(s) > maxDisplayNameLength {
		return field.ErrorList{field.TooLong(fldPath, "", maxDisplayNameLength)}
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return field.ErrorList{field.Invalid(fldPath, s, "must not contain control characters")}
	}
	return nil
}

// ValidateGroups checks a list of groups: non-empty strings without surrounding spaces, none
// twice, none with a reserved prefix.
func ValidateGroups(groups []string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := map[string]bool{}
	for i, g := range groups {
		p := fldPath.Index(i)
		switch {
		case g == "" || strings.TrimSpace(g) != g || strings.ContainsFunc(g, unicode.IsControl):
			allErrs = append(allErrs, field.Invalid(p, g, "must be non-empty, without surrounding spaces or control characters"))
		case len(g) > maxGroupLength:
			allErrs = append(allErrs, field.TooLong(p, "", maxGroupLength))
		case hasReservedPrefix(g):
			allErrs = append(allErrs, field.Invalid(p, g, fmt.Sprintf("the prefixes %s are reserved for groups the edge and Kubernetes set themselves", strings.Join(ReservedGroupPrefixes, ", "))))
		case seen[g]:
			allErrs = append(allErrs, field.Duplicate(p, g))
		}
		seen[g] = true
	}
	return allErrs
}

func hasReservedPrefix(g string) bool {
	for _, p := range ReservedGroupPrefixes {
		if strings.HasPrefix(strings.ToLower(g), p) {
			return true
		}
	}
	return false
}
