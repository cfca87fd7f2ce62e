package translate

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// Routes are split into scopes (Envoy's scoped RDS) so that a change to one target sends only
// that target's resources. With one route configuration for the whole edge, every change re-sent
// every target's routes: 6.3 MB to each Envoy per change at 10,000 targets (bench/README.md).
//
// Each cluster, virtual cluster and Grafana target has its own route configuration (named like
// its cluster, see ResourceName) and its own scope, keyed by ScopeKey. The management API, the
// public endpoints and the not-found route share the route configuration RouteConfigName, in
// the scope StaticScopeKey. Envoy picks a request's scope by the header ScopeHeader, which the
// first filter of the chain (scopeLua) computes from the normalised path and sets on every
// request, overwriting whatever a client sent, before anything reads the route.
//
// The scope only picks which table Envoy searches: within it, the target's routes still match
// the target's whole prefix and carry its ext_authz context extensions, so routing and
// authorisation still agree by construction. A path whose scope does not exist (a cluster,
// virtual cluster or Grafana that is not declared) would match no route, and Envoy would then
// skip ext_authz and answer 404 at once, telling a caller without a key which targets exist. So
// scopeLua checks that the request now has a route of a target's scope (its routes carry
// scopedMetadataKey in their metadata), and otherwise moves the request to the static scope,
// whose not-found route checks the key first, as before the split.
const (
	// ScopedRoutesName is the scoped route configuration set that the listener loads over SRDS;
	// Envoy's stats of it are http.edge.scoped_rds.edge.*.
	ScopedRoutesName = "edge"
	// ScopeHeader carries a request's scope key from scopeLua to Envoy's scope lookup. It is
	// removed before a request is forwarded.
	ScopeHeader = "x-keygate-route-scope"
	// StaticScopeKey is the scope of every path that names no cluster, virtual cluster or
	// Grafana: the management API, /auth/, /oidc/ and the not-found route.
	StaticScopeKey = "static"
)

// ScopeKey is the scope of target r's routes, as scopeLua computes it from a request's path,
// and false for the targets whose routes are in the static scope.
func ScopeKey(r edgepath.Ref) (string, bool) {
	switch r.Kind {
	case edgepath.KindCluster:
		return "cluster/" + r.Cluster, true
	case edgepath.KindVirtualCluster:
		return "virtualcluster/" + r.Cluster + "/" + r.Namespace + "/" + r.VirtualCluster, true
	case edgepath.KindGrafana:
		return "grafana/" + r.Cluster, true
	}
	return "", false
}

// scopedMetadataKey marks the routes of targets' own scopes, in their metadata under the scope
// filter's name (where Lua's handle:metadata() looks).
const scopedMetadataKey = "scoped"

// markScoped marks routes as routes of a target's own scope, for scopeLua.
func markScoped(routes []*routev3.Route) {
	meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		scopeFilter: {Fields: map[string]*structpb.Value{scopedMetadataKey: structpb.NewBoolValue(true)}},
	}}
	for _, r := range routes {
		r.Metadata = meta
	}
}

// scopeLua sets ScopeHeader from the path, then clears the route cache so that Envoy looks the
// route up again, in the scope just set; if that scope has no route for the path, it falls back
// to the static scope. The patterns follow target's grammar: each name is one path segment
// (names are DNS-1123, so they never hold "/", "?" or "#").
var scopeLua = `local segment = "([^/?#]+)"
local cluster = "^" .. "` + luaQuote(edgepath.PrefixCluster) + `" .. segment
local virtualcluster = "^" .. "` + luaQuote(edgepath.PrefixVirtualCluster) + `" .. segment .. "/" .. segment .. "/" .. segment
local grafana = "^" .. "` + luaQuote(edgepath.PrefixGrafana) + `" .. segment

local function scope(path)
  local c, ns, vc = string.match(path, virtualcluster)
  if vc ~= nil then return "virtualcluster/" .. c .. "/" .. ns .. "/" .. vc end
  c = string.match(path, cluster)
  if c ~= nil then return "cluster/" .. c end
  c = string.match(path, grafana)
  if c ~= nil then return "grafana/" .. c end
  return "` + StaticScopeKey + `"
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local key = scope(headers:get(":path") or "")
  headers:replace("` + ScopeHeader + `", key)
  handle:clearRouteCache()
  if key ~= "` + StaticScopeKey + `" and handle:metadata():get("` + scopedMetadataKey + `") == nil then
    headers:replace("` + ScopeHeader + `", "` + StaticScopeKey + `")
    handle:clearRouteCache()
  end
end
`

// luaQuote escapes s for use inside a double-quoted Lua string that is a Lua pattern: the
// pattern's magic characters get a "%", and quotes and backslashes their string escapes.
func luaQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case strings.ContainsRune(`^$()%.[]*+-?`, r):
			b.WriteRune('%')
			b.WriteRune(r)
		case r == '"' || r == '\\':
			b.WriteRune('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// scopedRoutes is the listener's route specifier: scopes over SRDS, keyed by ScopeHeader, each
// naming its route configuration, fetched over RDS; both on the ADS stream.
func scopedRoutes() *hcmv3.HttpConnectionManager_ScopedRoutes {
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	return &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name: ScopedRoutesName,
		ScopeKeyBuilder: &hcmv3.ScopedRoutes_ScopeKeyBuilder{
			Fragments: []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{{
				Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
					HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{
						Name: ScopeHeader,
						// No separator: the whole value is the key.
						ExtractType: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_Index{Index: 0},
					},
				},
			}},
		},
		RdsConfigSource: ads,
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: ads}},
	}}
}

// scope is the scoped route configuration that sends requests with scope key to the route
// configuration of the same name.
func scope(name, key string) *routev3.ScopedRouteConfiguration {
	return &routev3.ScopedRouteConfiguration{
		Name:                   name,
		RouteConfigurationName: name,
		Key: &routev3.ScopedRouteConfiguration_Key{Fragments: []*routev3.ScopedRouteConfiguration_Key_Fragment{{
			Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: key},
		}}},
	}
}

// ScopeLua is the source of the scope filter, for benchmarks that measure what it costs.
func ScopeLua() string { return scopeLua }

// ScopedMetadata is the metadata that marks a route of a target's own scope for the scope
// filter: the filter's name, the key, true.
func ScopedMetadata() (filter, key string) { return scopeFilter, scopedMetadataKey }
