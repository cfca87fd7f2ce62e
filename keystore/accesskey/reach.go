package accesskey

import (
	"slices"
	"strings"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// The target half of a scope: which targets each scope entry can let a request reach, whatever
// the request. extauthz's scope evaluation (extauthz/decide) asks these first and then looks at
// the request; the management API lists a target as reachable (clusters,
// virtualclusterinstances) when Reaches says so. One definition, so that what a user is shown
// is what the edge lets through.

// Reaches reports whether some request to target ref can pass scope s: no scope or an empty
// one reaches everything; otherwise at least one entry must reach ref.
func Reaches(s *v1.AccessKeyScope, ref edgepath.Ref) bool {
	if s == nil || ScopeEmpty(s) {
		return true
	}
	return slices.ContainsFunc(s.Clusters, func(c v1.AccessKeyScopeCluster) bool { return ClusterEntryReaches(c, ref) }) ||
		slices.ContainsFunc(s.VirtualClusters, func(vc v1.AccessKeyScopeVirtualCluster) bool { return VirtualClusterEntryReaches(vc, ref) }) ||
		slices.ContainsFunc(s.Spaces, func(sp v1.AccessKeyScopeSpace) bool { return SpaceEntryReaches(sp, ref) }) ||
		slices.ContainsFunc(s.Projects, func(p v1.AccessKeyScopeProject) bool { return ProjectReaches(p.Project, ref) }) ||
		slices.ContainsFunc(s.Roles, func(r v1.AccessKeyScopeRole) bool { return roleReaches(r, ref) }) ||
		slices.ContainsFunc(s.Rules, func(r v1.AccessKeyScopeRule) bool { return RuleTargetMatches(r, ref) && !RuleContradicts(r) }) ||
		(s.AllowLoftCLI && ref.Kind == edgepath.KindManagement)
}

// ScopeEmpty reports whether a scope has no entries, and so narrows nothing.
func ScopeEmpty(s *v1.AccessKeyScope) bool {
	return len(s.Roles) == 0 && len(s.Projects) == 0 && len(s.Spaces) == 0 && len(s.VirtualClusters) == 0 &&
		len(s.Clusters) == 0 && len(s.Rules) == 0 && !s.AllowLoftCLI
}

// ClusterEntryReaches: a cluster entry allows everything on the cluster ("*" for any): its API
// server, its Grafana and its virtual clusters.
func ClusterEntryReaches(c v1.AccessKeyScopeCluster, ref edgepath.Ref) bool {
	if c.Cluster == "" || (c.Cluster != "*" && c.Cluster != ref.Cluster) {
		return false
	}
	switch ref.Kind {
	case edgepath.KindCluster, edgepath.KindGrafana, edgepath.KindVirtualCluster:
		return true
	}
	return false
}

// VirtualClusterEntryReaches: a virtual-cluster entry allows one virtual cluster by name ("*"
// for any) in one project ("*" for any).
func VirtualClusterEntryReaches(vc v1.AccessKeyScopeVirtualCluster, ref edgepath.Ref) bool {
	if ref.Kind != edgepath.KindVirtualCluster || vc.VirtualCluster == "" {
		return false
	}
	return (vc.VirtualCluster == "*" || vc.VirtualCluster == ref.VirtualCluster) &&
		(vc.Project == "*" || vc.Project == ref.Project)
}

// SpaceInScope reports whether namespace ns of cluster target ref is space sp: the target
// source places ns in sp's project, and sp names it (or is "*").
func SpaceInScope(sp v1.AccessKeyScopeSpace, ref edgepath.Ref, ns string) bool {
	if ref.Kind != edgepath.KindCluster || sp.Project == "" || sp.Space == "" {
		return false
	}
	project, ok := ref.SpaceProject(ns)
	return ok && project == sp.Project && (sp.Space == "*" || sp.Space == ns)
}

// SpaceEntryReaches: a space entry reaches a cluster that has the space (discovery there, and
// the space's objects).
func SpaceEntryReaches(sp v1.AccessKeyScopeSpace, ref edgepath.Ref) bool {
	return slices.ContainsFunc(SpaceNames(ref), func(ns string) bool { return SpaceInScope(sp, ref, ns) })
}

// ProjectReaches: a project ("*" for any) reaches its virtual clusters and the clusters that
// have one of its spaces.
func ProjectReaches(project string, ref edgepath.Ref) bool {
	if project == "" {
		return false
	}
	switch ref.Kind {
	case edgepath.KindVirtualCluster:
		return ref.Project != "" && (project == "*" || project == ref.Project)
	case edgepath.KindCluster:
		if project == "*" {
			return ref.Spaces != ""
		}
		return SpaceEntryReaches(v1.AccessKeyScopeSpace{Project: project, Space: "*"}, ref)
	}
	return false
}

// roleReaches: the loft-cli role reaches the management API, its projects, and its virtual
// clusters by name. Unknown roles reach nothing.
func roleReaches(r v1.AccessKeyScopeRole, ref edgepath.Ref) bool {
	if r.Role != v1.AccessKeyScopeRoleLoftCLI {
		return false
	}
	if ref.Kind == edgepath.KindManagement || slices.ContainsFunc(r.Projects, func(p string) bool { return ProjectReaches(strings.TrimSpace(p), ref) }) {
		return true
	}
	return ref.Kind == edgepath.KindVirtualCluster && slices.ContainsFunc(r.VirtualClusters, func(vc string) bool {
		return vc == "*" || vc == ref.VirtualCluster
	})
}

// SpaceNames are the namespaces the target source makes spaces of cluster target ref.
func SpaceNames(ref edgepath.Ref) []string {
	var names []string
	for _, part := range strings.Split(ref.Spaces, ",") {
		if ns, _, ok := strings.Cut(part, "="); ok {
			names = append(names, ns)
		}
	}
	return names
}

// RuleTargetMatches applies a rule's cluster, virtualClusters and requestTargets to a target.
func RuleTargetMatches(r v1.AccessKeyScopeRule, ref edgepath.Ref) bool {
	if r.Cluster != "" && (ref.Cluster != r.Cluster || !(ref.Kind == edgepath.KindCluster || ref.Kind == edgepath.KindVirtualCluster || ref.Kind == edgepath.KindGrafana)) {
		return false
	}
	if len(r.VirtualClusters) > 0 {
		if ref.Kind != edgepath.KindVirtualCluster {
			return false
		}
		if !slices.ContainsFunc(r.VirtualClusters, func(vc v1.AccessKeyVirtualCluster) bool {
			return vc.Name == ref.VirtualCluster && (vc.Namespace == "" || vc.Namespace == ref.Namespace)
		}) {
			return false
		}
	}
	if len(r.RequestTargets) > 0 && !slices.ContainsFunc(r.RequestTargets, func(t v1.RequestTarget) bool { return requestTargetMatches(t, ref) }) {
		return false
	}
	return true
}

// RuleContradicts reports whether a rule sets both resource and non-resource fields: audit
// policy forbids mixing them; such a rule can never match both, so it matches nothing.
func RuleContradicts(r v1.AccessKeyScopeRule) bool {
	return (len(r.Resources) > 0 || len(r.Namespaces) > 0) && len(r.NonResourceURLs) > 0
}

func requestTargetMatches(t v1.RequestTarget, ref edgepath.Ref) bool {
	switch t {
	case v1.RequestTargetManagement:
		return ref.Kind == edgepath.KindManagement
	case v1.RequestTargetCluster:
		return ref.Kind == edgepath.KindCluster
	case v1.RequestTargetVirtualCluster:
		return ref.Kind == edgepath.KindVirtualCluster
	case v1.RequestTargetProjectVirtualCluster:
		return ref.Kind == edgepath.KindVirtualCluster && ref.Project != ""
	}
	// ProjectSpace: the edge has no project space routes yet, so nothing is one.
	return false
}
