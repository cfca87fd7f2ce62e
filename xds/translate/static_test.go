package translate

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/envoy/static"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// The static configuration (envoy/static) treats requests as xds's listener does: the same
// path normalisation, upgrades, limits, ext_authz settings and multi-valued header filter, and
// the same routes for the same targets (but for the context extensions it cannot send).
func TestStaticConfigMatchesXDS(t *testing.T) {
	targets := []model.Target{
		{Ref: mgmt, Upstream: secure(t, "https://127.0.0.1:9443")},
		{Ref: auth, Upstream: plain(t, "http://127.0.0.1:8080")},
		{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")},
		{Ref: vc1, Upstream: secure(t, "https://vc1.example.com")},
		{Ref: grafana, Upstream: plain(t, "http://127.0.0.1:3000")},
	}
	p := static.Params{AdminAddress: "127.0.0.1:9901", ListenAddress: "127.0.0.1:8443", ServingCertFile: "s.crt", ServingKeyFile: "s.key",
		ExtAuthzAddress: "127.0.0.1:19000", ExtAuthzTLS: static.TLS{CAFile: "ca.crt", CertFile: "e.crt", KeyFile: "e.key"}}
	for _, tg := range targets {
		p.Targets = append(p.Targets, static.Target{Ref: tg.Ref, URL: tg.Upstream.URL.String(), TLS: static.TLS{CAFile: "ca.crt"}})
	}
	got := staticHCM(t, p)
	want, err := connectionManager(Options{ExtAuthzCluster: DefaultExtAuthzCluster, ExtAuthzTimeout: DefaultExtAuthzTimeout}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	// The HCM's own settings, without its routes and filters.
	gotRoutes := got.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	gotFilters, wantFilters := got.HttpFilters, want.HttpFilters
	got.RouteSpecifier, want.RouteSpecifier, got.HttpFilters, want.HttpFilters = nil, nil, nil, nil
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("static HTTP connection manager differs from xds's (-xds +static):\n%s", d)
	}
	// xds's chain is the scope filter, then the same three.
	if len(gotFilters) != 3 || len(wantFilters) != 4 {
		t.Fatalf("filters: static %d, xds %d; want 3 and 4", len(gotFilters), len(wantFilters))
	}
	if d := cmp.Diff(wantFilters[1:], gotFilters, protocmp.Transform()); d != "" {
		t.Errorf("static filter chain differs from xds's (-xds +static):\n%s", d)
	}
	compareRoutes(t, targets, gotRoutes)
}

// compareRoutes checks that each target's two static routes are xds's, without the per-route
// ext_authz settings (context extensions, which the static configuration cannot send) and the
// scope marks.
func compareRoutes(t *testing.T, targets []model.Target, got []*routev3.Route) {
	t.Helper()
	var want []*routev3.Route
	for _, tg := range targets {
		rs, err := targetRoutes(tg, Limits{}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rs...)
	}
	if len(got) != len(want)+1 {
		t.Fatalf("static routes: %d, want %d and the not-found route", len(got), len(want))
	}
	for i, w := range want {
		g := proto.Clone(got[i]).(*routev3.Route)
		public := w.TypedPerFilterConfig != nil && perRoute(t, w).GetDisabled()
		if public != (g.TypedPerFilterConfig != nil && perRoute(t, g).GetDisabled()) {
			t.Errorf("route %s: ext_authz disabled = %v in xds, not in static", w.Name, public)
		}
		g.TypedPerFilterConfig, w.TypedPerFilterConfig, w.Metadata = nil, nil, nil
		if d := cmp.Diff(w, g, protocmp.Transform()); d != "" {
			t.Errorf("route %s differs (-xds +static):\n%s", w.Name, d)
		}
	}
	nf, err := notFoundRoute()
	if err != nil {
		t.Fatal(err)
	}
	last := proto.Clone(got[len(got)-1]).(*routev3.Route)
	last.TypedPerFilterConfig, nf.TypedPerFilterConfig = nil, nil
	if d := cmp.Diff(nf, last, protocmp.Transform()); d != "" {
		t.Errorf("not-found route differs (-xds +static):\n%s", d)
	}
}

// staticHCM renders p and returns its listener's HTTP connection manager, checking on the way
// that the configuration is a valid Envoy bootstrap (strictly: no unknown field).
func staticHCM(t *testing.T, p static.Params) *hcmv3.HttpConnectionManager {
	t.Helper()
	out, err := static.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("static configuration is not an Envoy bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if got := edgepath.HeaderListsLua; got != headerListsLua {
		t.Fatal("xds's Lua is not edgepath.HeaderListsLua")
	}
	return &hcm
}
