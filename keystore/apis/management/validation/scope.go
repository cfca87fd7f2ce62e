package validation

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

var (
	knownRoles          = []v1.AccessKeyScopeRoleName{v1.AccessKeyScopeRoleLoftCLI}
	knownRequestTargets = []v1.RequestTarget{
		v1.RequestTargetManagement, v1.RequestTargetCluster, v1.RequestTargetVirtualCluster,
		v1.RequestTargetProjectSpace, v1.RequestTargetProjectVirtualCluster,
	}
)

// ValidateAccessKeyScope validates a scope found at fldPath. A scope only ever narrows a key, so
// an entry with an empty name would narrow it to nothing without saying so; such entries are
// refused instead.
func ValidateAccessKeyScope(scope *v1.AccessKeyScope, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, r := range scope.Roles {
		p := fldPath.Child("roles").Index(i)
		switch {
		case r.Role == "":
			allErrs = append(allErrs, field.Required(p.Child("role"), ""))
		case !slices.Contains(knownRoles, r.Role):
			allErrs = append(allErrs, field.NotSupported(p.Child("role"), r.Role, knownRoles))
		}
		allErrs = append(allErrs, requireEach(r.Projects, p.Child("projects"))...)
		allErrs = append(allErrs, requireEach(r.VirtualClusters, p.Child("virtualClusters"))...)
	}
	for i, pr := range scope.Projects {
		allErrs = append(allErrs, require(pr.Project, fldPath.Child("projects").Index(i).Child("project"))...)
	}
	for i, sp := range scope.Spaces {
		p := fldPath.Child("spaces").Index(i)
		allErrs = append(allErrs, require(sp.Project, p.Child("project"))...)
		allErrs = append(allErrs, require(sp.Space, p.Child("space"))...)
	}
	for i, vc := range scope.VirtualClusters {
		p := fldPath.Child("virtualClusters").Index(i)
		allErrs = append(allErrs, require(vc.Project, p.Child("project"))...)
		allErrs = append(allErrs, require(vc.VirtualCluster, p.Child("virtualCluster"))...)
	}
	for i, c := range scope.Clusters {
		allErrs = append(allErrs, require(c.Cluster, fldPath.Child("clusters").Index(i).Child("cluster"))...)
	}
	for i, r := range scope.Rules {
		allErrs = append(allErrs, validateRule(&r, fldPath.Child("rules").Index(i))...)
	}
	return allErrs
}

// validateRule follows Kubernetes' audit-policy validation, whose matching the rules share.
func validateRule(r *v1.AccessKeyScopeRule, fldPath *field.Path) field.ErrorList {
	allErrs := requireEach(r.Verbs, fldPath.Child("verbs"))
	for i, u := range r.NonResourceURLs {
		p := fldPath.Child("nonResourceURLs").Index(i)
		if u == "*" {
			continue
		}
		if !strings.HasPrefix(u, "/") {
			allErrs = append(allErrs, field.Invalid(p, u, "must be \"*\" or begin with \"/\""))
		}
		if u != "" && strings.Contains(u[:len(u)-1], "*") {
			allErrs = append(allErrs, field.Invalid(p, u, "a \"*\" may only be the last character"))
		}
	}
	if len(r.NonResourceURLs) > 0 && (len(r.Resources) > 0 || len(r.Namespaces) > 0) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("nonResourceURLs"), r.NonResourceURLs,
			"may not be combined with resources or namespaces: a rule matches either resource requests or non-resource URLs"))
	}
	for i, t := range r.RequestTargets {
		if !slices.Contains(knownRequestTargets, t) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("requestTargets").Index(i), t, knownRequestTargets))
		}
	}
	for i, vc := range r.VirtualClusters {
		allErrs = append(allErrs, require(vc.Name, fldPath.Child("virtualClusters").Index(i).Child("name"))...)
	}
	return allErrs
}

func require(value string, fldPath *field.Path) field.ErrorList {
	if value == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return nil
}

// requireEach refuses empty entries of a list; an empty list is fine (it matches everything).
func requireEach[T ~string](values []T, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, v := range values {
		if v == "" {
			allErrs = append(allErrs, field.Required(fldPath.Index(i), "may not be an empty string"))
		}
	}
	return allErrs
}
