package decide

import (
	"slices"
	"strings"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// ruleMatches reports whether a scope rule covers a request, the way a Kubernetes audit-policy
// rule matches: an empty list matches everything; `resources` or `namespaces` make the rule
// match resource requests only, `nonResourceURLs` non-resource requests only; `cluster`,
// `virtualClusters` and `requestTargets` narrow the targets.
func ruleMatches(r v1.AccessKeyScopeRule, ref edgepath.Ref, a attributes.Attributes) bool {
	if !accesskey.RuleTargetMatches(r, ref) {
		return false
	}
	if len(r.Verbs) > 0 && !slices.Contains(r.Verbs, a.Verb) && !slices.Contains(r.Verbs, "*") {
		return false
	}
	resourceRule := len(r.Resources) > 0 || len(r.Namespaces) > 0
	nonResourceRule := len(r.NonResourceURLs) > 0
	switch {
	case accesskey.RuleContradicts(r):
		return false
	case resourceRule:
		if !a.ResourceRequest {
			return false
		}
		if len(r.Namespaces) > 0 && !namespaceMatches(r.Namespaces, a) {
			return false
		}
		return len(r.Resources) == 0 || slices.ContainsFunc(r.Resources, func(gr v1.GroupResources) bool { return groupResourceMatches(gr, a) })
	case nonResourceRule:
		return !a.ResourceRequest && slices.ContainsFunc(r.NonResourceURLs, func(u string) bool { return urlMatches(u, a.Path) })
	}
	return true
}

// namespaceMatches: "" stands for cluster-scoped resources, the Namespace objects among them
// (objectNamespace).
func namespaceMatches(namespaces []string, a attributes.Attributes) bool {
	return slices.Contains(namespaces, objectNamespace(a))
}

// objectNamespace is the namespace a scope places a resource request in: the request's
// namespace, except that a Namespace object itself (/api/v1/namespaces/x, its status and
// finalize) is cluster-scoped. RequestInfoFactory puts it in namespace x, so Kubernetes RBAC
// and audit policy let a rule for namespace x patch or delete namespace x; a scope does not:
// the object's labels decide its pod security and, with the Kubernetes target source, the
// project whose spaces it is, and deleting it deletes all it holds.
func objectNamespace(a attributes.Attributes) string {
	if a.APIGroup == "" && a.Resource == "namespaces" {
		return ""
	}
	return a.Namespace
}

// groupResourceMatches: resources are "res" (not its subresources), "res/sub", "*" (all, with
// subresources), "*/sub" or "res/*".
func groupResourceMatches(gr v1.GroupResources, a attributes.Attributes) bool {
	if gr.Group != a.APIGroup && gr.Group != "*" {
		return false
	}
	if len(gr.ResourceNames) > 0 && !slices.Contains(gr.ResourceNames, a.Name) {
		return false
	}
	if len(gr.Resources) == 0 {
		return true
	}
	full := a.Resource
	if a.Subresource != "" {
		full += "/" + a.Subresource
	}
	for _, r := range gr.Resources {
		switch {
		case r == full, r == "*": // "*" is every resource and its subresources
			return true
		case strings.HasPrefix(r, "*/") && a.Subresource != "" && r[2:] == a.Subresource:
			return true
		case strings.HasSuffix(r, "/*") && a.Subresource != "" && r[:len(r)-2] == a.Resource:
			return true
		}
	}
	return false
}

// urlMatches: "*", an exact path, or a prefix ending in "*".
func urlMatches(pattern, path string) bool {
	if pattern == "*" || pattern == path {
		return true
	}
	prefix, wild := strings.CutSuffix(pattern, "*")
	return wild && strings.HasPrefix(path, prefix)
}
