package decide

import (
	"strings"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// spaceMatches: a space is a namespace of a connected cluster that belongs to a project. A
// space scope allows namespaced requests in that namespace only (not the Namespace object
// itself: objectNamespace), and only where the target source says the namespace is a space of
// that project ("*" for any space of the project).
//
// Clients cannot work without discovery (kubectl asks /api and /apis before anything else), and
// discovery shows only the API's shape, no objects: so a space scope also covers discovery GETs
// on a cluster where it has a space.
func spaceMatches(sp v1.AccessKeyScopeSpace, ref edgepath.Ref, a attributes.Attributes) bool {
	if ref.Kind != edgepath.KindCluster || sp.Project == "" || sp.Space == "" {
		return false
	}
	inScope := func(ns string) bool { return accesskey.SpaceInScope(sp, ref, ns) }
	if !a.ResourceRequest {
		return isDiscovery(a) && accesskey.SpaceEntryReaches(sp, ref)
	}
	ns := objectNamespace(a)
	return ns != "" && inScope(ns)
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
			return hasSpace(ref, objectNamespace(a))
		}
		return spaceMatches(v1.AccessKeyScopeSpace{Project: project, Space: "*"}, ref, a)
	}
	return false
}

func hasSpace(ref edgepath.Ref, ns string) bool {
	_, ok := ref.SpaceProject(ns)
	return ns != "" && ok
}
