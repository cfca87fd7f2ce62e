package decide

import (
	"slices"
	"strings"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// roleMatches: the loft-cli role grants the loft-cli allow-list, and everything in the projects
// and virtual clusters (by name) it lists. Unknown roles grant nothing.
func roleMatches(r v1.AccessKeyScopeRole, ref edgepath.Ref, a attributes.Attributes) bool {
	if r.Role != v1.AccessKeyScopeRoleLoftCLI {
		return false
	}
	if loftCLIAllows(ref, a) {
		return true
	}
	for _, p := range r.Projects {
		if projectMatches(strings.TrimSpace(p), ref, a) {
			return true
		}
	}
	return ref.Kind == edgepath.KindVirtualCluster && slices.ContainsFunc(r.VirtualClusters, func(vc string) bool {
		return vc == "*" || vc == ref.VirtualCluster
	})
}
