package validation

import (
	"strings"
	"unicode"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

const maxDescriptionLength = 4096

// ValidateTeam validates a team about to be created. Team names are DNS-1123 subdomains, as the
// user store's records of membership require.
func ValidateTeam(t *v1.Team) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&t.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, validateTeamSpec(&t.Spec, field.NewPath("spec"))...)
}

// ValidateTeamUpdate validates an update of oldT to newT.
func ValidateTeamUpdate(newT, oldT *v1.Team) field.ErrorList {
	metaPath := field.NewPath("metadata")
	allErrs := apivalidation.ValidateObjectMeta(&newT.ObjectMeta, false, apivalidation.NameIsDNSSubdomain, metaPath)
	allErrs = append(allErrs, apivalidation.ValidateObjectMetaUpdate(&newT.ObjectMeta, &oldT.ObjectMeta, metaPath)...)
	return append(allErrs, validateTeamSpec(&newT.Spec, field.NewPath("spec"))...)
}

func validateTeamSpec(spec *v1.TeamSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateDisplayName(spec.DisplayName, fldPath.Child("displayName"))
	if len(spec.Description) > maxDescriptionLength {
		allErrs = append(allErrs, field.TooLong(fldPath.Child("description"), "", maxDescriptionLength))
	} else if strings.ContainsFunc(spec.Description, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("description"), spec.Description, "must not contain control characters other than newlines and tabs"))
	}
	seen := map[string]bool{}
	for i, u := range spec.Users {
		p := fldPath.Child("users").Index(i)
		if errs := validation.IsDNS1123Label(u); len(errs) > 0 {
			allErrs = append(allErrs, field.Invalid(p, u, strings.Join(errs, "; ")))
		} else if seen[u] {
			allErrs = append(allErrs, field.Duplicate(p, u))
		}
		seen[u] = true
	}
	return append(allErrs, ValidateGroups(spec.Groups, fldPath.Child("groups"))...)
}
