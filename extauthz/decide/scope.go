package decide

import (
	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// scopeRefuses returns the first of the request's checks (one per verb it needs: exec needs
// create as well as get) that a scope does not cover. No scope, or an empty one, covers
// everything: the upstream's own RBAC decides. A non-empty scope only narrows: each check
// passes when at least one entry covers it, as each of Kubernetes' checks may be granted by a
// different rule. A request whose attributes could not be parsed is refused: it has no checks
// that could pass, and empty attributes must not match an entry by accident.
func scopeRefuses(s *v1.AccessKeyScope, ref edgepath.Ref, a attributes.Attributes) (attributes.Attributes, bool) {
	if s == nil || accesskey.ScopeEmpty(s) {
		return a, false
	}
	if !a.Parsed() {
		return a, true
	}
	for _, check := range a.Checks() {
		if !scopeAllows(s, ref, check) {
			return check, true
		}
	}
	return a, false
}

// scopeAllows reports whether a non-empty scope covers one check of a request to ref.
func scopeAllows(s *v1.AccessKeyScope, ref edgepath.Ref, a attributes.Attributes) bool {
	for _, r := range s.Rules {
		if ruleMatches(r, ref, a) {
			return true
		}
	}
	for _, sp := range s.Spaces {
		if spaceMatches(sp, ref, a) {
			return true
		}
	}
	for _, p := range s.Projects {
		if projectMatches(p.Project, ref, a) {
			return true
		}
	}
	if s.AllowLoftCLI && loftCLIAllows(ref, a) {
		return true
	}
	for _, r := range s.Roles {
		if roleMatches(r, ref, a) {
			return true
		}
	}
	for _, c := range s.Clusters {
		if accesskey.ClusterEntryReaches(c, ref) {
			return true
		}
	}
	for _, vc := range s.VirtualClusters {
		if accesskey.VirtualClusterEntryReaches(vc, ref) {
			return true
		}
	}
	return false
}
