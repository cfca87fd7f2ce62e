package decide

import (
	"slices"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
)

// The requests a CLI needs from the management API, and nothing more: discovery, OpenAPI,
// asking who it is, and reading what it can connect to. Documented in docs/scopes.md; keep
// both in step.
var (
	loftCLIPaths = []string{
		"/version", "/api", "/apis", "/apis/management.loft.sh", "/apis/management.loft.sh/v1",
		"/openapi/v2", "/openapi/v3", "/openapi/v3/*",
	}
	// loftCLIReadResources may be read (get, list, watch).
	loftCLIReadResources = []string{"selves", "clusters", "projects", "virtualclusterinstances", "spaceinstances"}
	// loftCLICreateResources are create-to-ask resources: creating one reads, it changes nothing.
	loftCLICreateResources = []string{"selves"}
)

const loftGroup = "management.loft.sh"

// loftCLIAllows reports whether a request is one of the read-only management requests of the
// loft-cli allow-list.
func loftCLIAllows(ref edgepath.Ref, a attributes.Attributes) bool {
	if ref.Kind != edgepath.KindManagement {
		return false
	}
	if !a.ResourceRequest {
		return a.Verb == "get" && slices.ContainsFunc(loftCLIPaths, func(p string) bool { return urlMatches(p, a.Path) })
	}
	if a.APIGroup != loftGroup || a.Subresource != "" {
		return false
	}
	switch a.Verb {
	case "get", "list", "watch":
		return slices.Contains(loftCLIReadResources, a.Resource)
	case "create":
		return slices.Contains(loftCLICreateResources, a.Resource)
	}
	return false
}
