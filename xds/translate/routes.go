package translate

import (
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// NotFoundBody is what the edge answers for a path that names no target: a Kubernetes Status,
// so that kubectl prints the message.
const NotFoundBody = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the path names no target on this edge","reason":"NotFound","code":404}`

func routeConfig(name string, routes []*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		// The scope header is Envoy's business: no upstream sees it.
		RequestHeadersToRemove: []string{ScopeHeader},
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes:  routes,
		}},
	}
}

// targetRoutes are the routes of one target: its prefix without the trailing slash (exactly)
// and with it (as a prefix), both forwarding to the target's cluster with the prefix replaced by
// "/", so /kubernetes/cluster/demo/api?watch=1 reaches the upstream as /api?watch=1.
func targetRoutes(t model.Target, l Limits) ([]*routev3.Route, error) {
	prefix := t.Ref.Prefix()
	perFilter, err := authzPerRoute(t.Ref)
	if err != nil {
		return nil, err
	}
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ResourceName(t.Ref)},
		PrefixRewrite:    "/",
		// The upstream sees the Host a direct client would send (API servers and Grafana
		// check it, e.g. for CSRF and redirects).
		HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: t.Upstream.URL.Host},
	}
	if longLived(t.Ref.Kind) {
		// Watches last for hours, even when idle, and exec/port-forward sessions as long as
		// their user wants: Envoy's defaults (15s per request, 5m idle) would cut them.
		action.Timeout = durationpb.New(0)
		action.IdleTimeout = durationpb.New(0)
		// But not longer than the key that opened them may have been revoked for (streams.go).
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(l.WatchMaxDuration[t.Ref.Kind])}
	}
	var remove []string
	if !t.Ref.Kind.Public() {
		// The access key is for the edge only. ext_authz removes it too; this holds even if
		// a check were ever skipped.
		remove = []string{"authorization"}
	}
	var respond []*corev3.HeaderValueOption
	if !t.Ref.Kind.Public() {
		respond = targetHeader(t.Ref)
	}
	name := ResourceName(t.Ref)
	route := func(suffix string, match *routev3.RouteMatch) *routev3.Route {
		return &routev3.Route{
			Name:                   name + suffix,
			Match:                  match,
			Action:                 &routev3.Route_Route{Route: action},
			RequestHeadersToRemove: remove,
			ResponseHeadersToAdd:   respond,
			TypedPerFilterConfig:   perFilter,
		}
	}
	routes := []*routev3.Route{
		route("/path", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: strings.TrimSuffix(prefix, "/")}}),
		route("/prefix", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}),
	}
	if longLived(t.Ref.Kind) {
		routes = append([]*routev3.Route{sessionRoute(route("/session", &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix},
			Headers:       []*routev3.HeaderMatcher{{Name: "upgrade", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
		}), l.SessionMaxDuration[t.Ref.Kind])}, routes...)
	}
	return routes, nil
}

// sessionRoute is r for upgraded requests (exec, attach, port-forward over SPDY or WebSocket,
// Grafana Live): the same action with the session bound instead of the watch bound.
func sessionRoute(r *routev3.Route, bound time.Duration) *routev3.Route {
	a := proto.Clone(r.GetRoute()).(*routev3.RouteAction)
	a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(bound)}
	r.Action = &routev3.Route_Route{Route: a}
	return r
}

// longLived reports whether a kind's requests may stay open indefinitely: Kubernetes API
// servers (watch, exec, port-forward) and Grafana (live websockets).
func longLived(k edgepath.Kind) bool {
	return k == edgepath.KindManagement || k.Kubernetes() || k == edgepath.KindGrafana
}

// authzPerRoute tells ext_authz which target a route is for (so extauthz never re-parses the
// path), or turns it off for public targets.
func authzPerRoute(r edgepath.Ref) (map[string]*anypb.Any, error) {
	per := &extauthzv3.ExtAuthzPerRoute{}
	if r.Kind.Public() {
		per.Override = &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}
	} else {
		per.Override = &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
			ContextExtensions: r.ContextExtensions(),
		}}
	}
	a, err := pack(per)
	if err != nil {
		return nil, fmt.Errorf("ext_authz per-route config: %w", err)
	}
	return map[string]*anypb.Any{extAuthzFilter: a}, nil
}

// notFoundRoute answers every path that names no target with 404. ext_authz still checks the
// key first, so that without a valid key one cannot learn which clusters exist (401 before 404).
func notFoundRoute() (*routev3.Route, error) {
	perFilter, err := authzPerRoute(edgepath.Ref{Kind: edgepath.KindNone})
	if err != nil {
		return nil, err
	}
	return &routev3.Route{
		Name:  "not_found",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 404,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: NotFoundBody}},
		}},
		ResponseHeadersToAdd: append([]*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}, targetHeader(edgepath.Ref{Kind: edgepath.KindNone})...),
		TypedPerFilterConfig: perFilter,
	}, nil
}

// targetHeader names the route's target in the answer (edgepath.TargetHeader), as extauthz does
// behind an Envoy that sends it no context_extensions: here the route says it, so that no check
// answer has to carry it.
func targetHeader(r edgepath.Ref) []*corev3.HeaderValueOption {
	return []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: edgepath.TargetHeader, Value: r.Name()},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
}
