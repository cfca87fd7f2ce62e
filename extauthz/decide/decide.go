// Package decide judges a request: given an access key, the target it is for and the time, may
// it pass? Pure: no I/O, no clock, so every rule is a table test.
package decide

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Outcome is what happens to a request.
type Outcome int

// Outcomes.
const (
	// Allow forwards the request with the key's identity.
	Allow Outcome = iota
	// Unauthenticated refuses it with 401: the key does not work at all.
	Unauthenticated
	// Forbidden refuses it with 403: the key works, but not for this.
	Forbidden
)

func (o Outcome) String() string {
	return [...]string{"allow", "unauthenticated", "forbidden"}[o]
}

// Decision is the verdict with its reasons.
type Decision struct {
	Outcome Outcome
	// Reason is a short machine-readable cause for logs and metrics ("expired", "disabled",
	// "scope").
	Reason string
	// Message is what the client is told. It names only the request's own target.
	Message string
}

// Options are the operator's settings.
type Options struct {
	// MaxTTL caps every key's lifetime, counted like its ttl; 0 means no cap.
	MaxTTL time.Duration
}

// Decide judges a request with key k to target ref, with request attributes a, at time now.
func Decide(k *v1.OwnedAccessKey, ref edgepath.Ref, a attributes.Attributes, now time.Time, opts Options) Decision {
	if k.Spec.Disabled {
		return Decision{Unauthenticated, "disabled", fmt.Sprintf("access key %q is disabled", k.Name)}
	}
	if accesskey.Expired(k, now, opts.MaxTTL) {
		return Decision{Unauthenticated, "expired", fmt.Sprintf("access key %q has expired", k.Name)}
	}
	if ref.Kind == edgepath.KindNone || ref.Kind.Public() {
		// Nothing to reach (Envoy answers 404), or nothing that needs a key.
		return Decision{Outcome: Allow}
	}
	if !scopeAllows(k.Spec.Scope, ref, a) {
		return Decision{Forbidden, "scope", fmt.Sprintf("access key %q is not allowed to %s", k.Name, describe(a, ref))}
	}
	return Decision{Outcome: Allow}
}

// scopeAllows reports whether a scope covers a request to ref. No scope, or an empty one,
// covers everything: the upstream's own RBAC decides. A non-empty scope only narrows: the
// request passes when at least one entry covers it.
func scopeAllows(s *v1.AccessKeyScope, ref edgepath.Ref, a attributes.Attributes) bool {
	if s == nil || isEmpty(s) {
		return true
	}
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
		if c.Cluster == "" {
			continue
		}
		if c.Cluster == "*" || c.Cluster == ref.Cluster {
			switch ref.Kind {
			case edgepath.KindCluster, edgepath.KindGrafana, edgepath.KindVirtualCluster:
				return true
			}
		}
	}
	for _, vc := range s.VirtualClusters {
		if ref.Kind != edgepath.KindVirtualCluster || vc.VirtualCluster == "" {
			continue
		}
		if (vc.VirtualCluster == "*" || vc.VirtualCluster == ref.VirtualCluster) &&
			(vc.Project == "*" || vc.Project == ref.Project) {
			return true
		}
	}
	return false
}

// spaceMatches: a space is a namespace of a connected cluster that belongs to a project. A
// space scope allows namespaced requests in that namespace only, and only where the target
// source says the namespace is a space of that project ("*" for any space of the project).
//
// Clients cannot work without discovery (kubectl asks /api and /apis before anything else), and
// discovery shows only the API's shape, no objects: so a space scope also covers discovery GETs
// on a cluster where it has a space.
func spaceMatches(sp v1.AccessKeyScopeSpace, ref edgepath.Ref, a attributes.Attributes) bool {
	if ref.Kind != edgepath.KindCluster || sp.Project == "" || sp.Space == "" {
		return false
	}
	inScope := func(ns string) bool {
		project, ok := ref.SpaceProject(ns)
		return ok && project == sp.Project && (sp.Space == "*" || sp.Space == ns)
	}
	if !a.ResourceRequest {
		return isDiscovery(a) && slices.ContainsFunc(spaceNames(ref), inScope)
	}
	return a.Namespace != "" && inScope(a.Namespace)
}

// isDiscovery reports whether a request reads API discovery or OpenAPI documents.
func isDiscovery(a attributes.Attributes) bool {
	if a.ResourceRequest || a.Verb != "get" {
		return false
	}
	p := a.Path
	return p == "/version" || p == "/api" || strings.HasPrefix(p, "/api/") || p == "/apis" || strings.HasPrefix(p, "/apis/") ||
		p == "/openapi/v2" || p == "/openapi/v3" || strings.HasPrefix(p, "/openapi/v3/")
}

func spaceNames(ref edgepath.Ref) []string {
	var names []string
	for _, part := range strings.Split(ref.Spaces, ",") {
		if ns, _, ok := strings.Cut(part, "="); ok {
			names = append(names, ns)
		}
	}
	return names
}

// projectMatches: a project scope allows everything in the project's spaces and virtual
// clusters ("*" for every project).
func projectMatches(project string, ref edgepath.Ref, a attributes.Attributes) bool {
	if project == "" {
		return false
	}
	switch ref.Kind {
	case edgepath.KindVirtualCluster:
		return ref.Project != "" && (project == "*" || project == ref.Project)
	case edgepath.KindCluster:
		if project == "*" {
			if !a.ResourceRequest {
				return isDiscovery(a) && ref.Spaces != ""
			}
			return hasSpace(ref, a.Namespace)
		}
		return spaceMatches(v1.AccessKeyScopeSpace{Project: project, Space: "*"}, ref, a)
	}
	return false
}

func hasSpace(ref edgepath.Ref, ns string) bool {
	_, ok := ref.SpaceProject(ns)
	return ns != "" && ok
}

// describe names what a request does, for a denial: `list pods in namespace "a" on cluster
// "demo"`, `get /version on cluster "demo"`, `access grafana of cluster "demo"`. It names only
// the request's own objects.
func describe(a attributes.Attributes, ref edgepath.Ref) string {
	if !a.ResourceRequest {
		if a.Path == "" || a.Verb == "" {
			return "access " + ref.String()
		}
		return a.Verb + " " + a.Path + " on " + ref.String()
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.APIGroup != "" {
		res += "." + a.APIGroup
	}
	s := a.Verb + " " + res
	if a.Name != "" {
		s += fmt.Sprintf(" %q", a.Name)
	}
	if a.Namespace != "" {
		s += fmt.Sprintf(" in namespace %q", a.Namespace)
	}
	return s + " on " + ref.String()
}

func isEmpty(s *v1.AccessKeyScope) bool {
	return len(s.Roles) == 0 && len(s.Projects) == 0 && len(s.Spaces) == 0 && len(s.VirtualClusters) == 0 &&
		len(s.Clusters) == 0 && len(s.Rules) == 0 && !s.AllowLoftCLI
}
