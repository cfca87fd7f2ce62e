package translate

import (
	"math/rand/v2"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// Fixture builders: a target of each kind, and upstreams with or without TLS.

var (
	demo    = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	vc1     = edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1", Project: "team-a"}
	grafana = edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}
	mgmt    = edgepath.Ref{Kind: edgepath.KindManagement}
	auth    = edgepath.Ref{Kind: edgepath.KindAuth}
	oidc    = edgepath.Ref{Kind: edgepath.KindOIDC}
)

func pemFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/pki/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func plain(t *testing.T, raw string) model.Upstream {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return model.Upstream{URL: u}
}

func secure(t *testing.T, raw string) model.Upstream {
	t.Helper()
	u := plain(t, raw)
	u.CA = pemFile(t, "ca.crt")
	u.ClientCert = pemFile(t, "edge.crt")
	u.ClientKey = pemFile(t, "edge.key")
	return u
}

// withToken is a TLS upstream (CA, no client certificate) that authenticates with a bearer token.
func withToken(t *testing.T, raw, token string) model.Upstream {
	t.Helper()
	u := secure(t, raw)
	u.ClientCert, u.ClientKey = nil, nil
	u.Token = token
	return u
}

func translate(t *testing.T, targets ...model.Target) Resources {
	t.Helper()
	res, err := Translate(model.New(targets...), goldenOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// routesOf returns the routes of the static scope's route configuration.
func routesOf(r Resources) []*routev3.Route { return r.Routes[0].VirtualHosts[0].Routes }

// routeConfigNamed returns the route configuration called name, or nil.
func routeConfigNamed(r Resources, name string) *routev3.RouteConfiguration {
	for _, rc := range r.Routes {
		if rc.Name == name {
			return rc
		}
	}
	return nil
}

func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	per := &extauthzv3.ExtAuthzPerRoute{}
	if err := r.TypedPerFilterConfig["envoy.filters.http.ext_authz"].UnmarshalTo(per); err != nil {
		t.Fatalf("route %s: ext_authz per-route config: %v", r.Name, err)
	}
	return per
}

func upstreamTLSOf(t *testing.T, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	if c.TransportSocket == nil {
		t.Fatalf("cluster %s has no TLS", c.Name)
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := c.TransportSocket.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestRoutes(t *testing.T) {
	tests := map[string]struct {
		target model.Target
		// paths are the path and prefix matches, in order.
		paths         [2]string
		cluster, host string
		public        bool
		longLived     bool
	}{
		"cluster":         {model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")}, [2]string{"/kubernetes/cluster/demo", "/kubernetes/cluster/demo/"}, "cluster_demo", "127.0.0.1:6443", false, true},
		"virtual cluster": {model.Target{Ref: vc1, Upstream: secure(t, "https://vc1.example.com")}, [2]string{"/kubernetes/virtualcluster/demo/vcluster-demo/vc1", "/kubernetes/virtualcluster/demo/vcluster-demo/vc1/"}, "virtualcluster_demo_vcluster-demo_vc1", "vc1.example.com", false, true},
		"grafana":         {model.Target{Ref: grafana, Upstream: plain(t, "http://127.0.0.1:3000")}, [2]string{"/grafana/demo", "/grafana/demo/"}, "grafana_demo", "127.0.0.1:3000", false, true},
		"management":      {model.Target{Ref: mgmt, Upstream: secure(t, "https://127.0.0.1:9443")}, [2]string{"/kubernetes/management", "/kubernetes/management/"}, "management", "127.0.0.1:9443", false, true},
		"auth":            {model.Target{Ref: auth, Upstream: plain(t, "http://127.0.0.1:8080")}, [2]string{"/auth", "/auth/"}, "auth", "127.0.0.1:8080", true, false},
		"oidc":            {model.Target{Ref: oidc, Upstream: plain(t, "http://[::1]:5556")}, [2]string{"/oidc", "/oidc/"}, "oidc", "[::1]:5556", true, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, tc.target)
			routes := routesOf(res)
			if tc.longLived {
				routes = checkSessionRoute(t, routes, tc.target.Ref.Kind)
			}
			if _, scoped := ScopeKey(tc.target.Ref); scoped {
				// The target's routes are alone in their own route configuration; the static
				// one keeps only the 404.
				if len(routes) != 1 {
					t.Errorf("static scope has %d routes, want only the 404", len(routes))
				}
				rc := routeConfigNamed(res, tc.cluster)
				if rc == nil {
					t.Fatalf("no route configuration %q", tc.cluster)
				}
				routes = rc.VirtualHosts[0].Routes
				if tc.longLived {
					routes = checkSessionRoute(t, routes, tc.target.Ref.Kind)
				}
				if len(routes) != 2 {
					t.Fatalf("got %d routes in %s, want the target's two", len(routes), rc.Name)
				}
			} else if len(routes) != 3 {
				t.Fatalf("got %d routes, want the target's two and the 404", len(routes))
			}
			if got := routes[0].Match.GetPath(); got != tc.paths[0] {
				t.Errorf("first route matches path %q, want %q", got, tc.paths[0])
			}
			if got := routes[1].Match.GetPrefix(); got != tc.paths[1] {
				t.Errorf("second route matches prefix %q, want %q", got, tc.paths[1])
			}
			for _, r := range routes[:2] {
				a := r.GetRoute()
				if a.GetCluster() != tc.cluster || a.GetPrefixRewrite() != "/" || a.GetHostRewriteLiteral() != tc.host {
					t.Errorf("route %s: cluster %q, prefix rewrite %q, host %q; want %q, \"/\", %q", r.Name, a.GetCluster(), a.GetPrefixRewrite(), a.GetHostRewriteLiteral(), tc.cluster, tc.host)
				}
				if got := a.GetTimeout() != nil && a.GetTimeout().AsDuration() == 0 && a.GetIdleTimeout() != nil && a.GetIdleTimeout().AsDuration() == 0; got != tc.longLived {
					t.Errorf("route %s: timeouts disabled = %v, want %v (timeout %v, idle %v)", r.Name, got, tc.longLived, a.GetTimeout(), a.GetIdleTimeout())
				}
				per := perRoute(t, r)
				if tc.public {
					if !per.GetDisabled() {
						t.Errorf("route %s of a public target: ext_authz not disabled: %v", r.Name, per)
					}
					if len(r.RequestHeadersToRemove) != 0 {
						t.Errorf("route %s of a public target removes %v; /auth/logout needs the key", r.Name, r.RequestHeadersToRemove)
					}
					continue
				}
				if diff := cmp.Diff(tc.target.Ref.ContextExtensions(), per.GetCheckSettings().GetContextExtensions()); diff != "" {
					t.Errorf("route %s: context extensions (-want +got):\n%s", r.Name, diff)
				}
				if diff := cmp.Diff([]string{"authorization"}, r.RequestHeadersToRemove); diff != "" {
					t.Errorf("route %s: headers removed (-want +got):\n%s", r.Name, diff)
				}
			}
		})
	}
}

// checkSessionRoute checks that a long-lived target's first route takes its upgraded requests
// with the session bound, and the next two (watches) the watch bound, and returns routes without
// the session route. A scoped target's routes are in their own configuration; the static one
// then has only the 404, returned as it is.
func checkSessionRoute(t *testing.T, routes []*routev3.Route, kind edgepath.Kind) []*routev3.Route {
	t.Helper()
	if len(routes) < 3 {
		return routes
	}
	s := routes[0]
	if h := s.Match.GetHeaders(); !strings.HasSuffix(s.Name, "/session") || len(h) != 1 || h[0].Name != "upgrade" || !h[0].GetPresentMatch() {
		t.Errorf("first route %s matches %v; want upgraded requests (upgrade header present)", s.Name, s.Match)
	}
	if got := s.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration().AsDuration(); got != DefaultSessionMaxDuration[kind] {
		t.Errorf("session route %s: max stream duration %v, want %v", s.Name, got, DefaultSessionMaxDuration[kind])
	}
	for _, r := range routes[1:3] {
		if got := r.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration().AsDuration(); got != DefaultWatchMaxDuration[kind] {
			t.Errorf("route %s: max stream duration %v, want the watch bound %v", r.Name, got, DefaultWatchMaxDuration[kind])
		}
	}
	return routes[1:]
}

func TestNotFoundRouteChecksTheKeyFirst(t *testing.T) {
	routes := routesOf(translate(t, model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")}))
	last := routes[len(routes)-1]
	if last.Match.GetPrefix() != "/" {
		t.Fatalf("last route matches %v, want prefix /", last.Match)
	}
	dr := last.GetDirectResponse()
	if dr.GetStatus() != 404 || dr.GetBody().GetInlineString() != NotFoundBody {
		t.Errorf("404 route answers %d %q", dr.GetStatus(), dr.GetBody().GetInlineString())
	}
	if h := last.ResponseHeadersToAdd; len(h) != 2 || h[0].Header.Key != "content-type" || h[0].Header.Value != "application/json" ||
		h[1].Header.Key != edgepath.TargetHeader || h[1].Header.Value != "none" {
		t.Errorf("404 route response headers = %v, want content-type: application/json and %s: none", h, edgepath.TargetHeader)
	}
	want := map[string]string{edgepath.ExtKind: "none"}
	if diff := cmp.Diff(want, perRoute(t, last).GetCheckSettings().GetContextExtensions()); diff != "" {
		t.Errorf("404 route must keep ext_authz on with kind none (-want +got):\n%s", diff)
	}
}

func TestClusters(t *testing.T) {
	withName := func(u model.Upstream, n string) model.Upstream { u.ServerName = n; return u }
	noClientCert := func(u model.Upstream) model.Upstream { u.ClientCert, u.ClientKey = nil, nil; return u }
	tests := map[string]struct {
		target   model.Target
		name     string
		typ      clusterv3.Cluster_DiscoveryType
		address  string
		port     uint32
		tls      bool
		sni      string
		san      string
		sanType  tlsv3.SubjectAltNameMatcher_SanType
		clientTL bool
	}{
		"ip upstream": {
			target: model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")},
			name:   "cluster_demo", typ: clusterv3.Cluster_STATIC, address: "127.0.0.1", port: 6443,
			tls: true, sni: "", san: "127.0.0.1", sanType: tlsv3.SubjectAltNameMatcher_IP_ADDRESS, clientTL: true,
		},
		"dns upstream on the default port": {
			target: model.Target{Ref: vc1, Upstream: noClientCert(secure(t, "https://vc1.example.com"))},
			name:   "virtualcluster_demo_vcluster-demo_vc1", typ: clusterv3.Cluster_STRICT_DNS, address: "vc1.example.com", port: 443,
			tls: true, sni: "vc1.example.com", san: "vc1.example.com", sanType: tlsv3.SubjectAltNameMatcher_DNS,
		},
		"server name overrides the host": {
			target: model.Target{Ref: mgmt, Upstream: withName(secure(t, "https://10.0.0.1:443"), "kubernetes.default.svc")},
			name:   "management", typ: clusterv3.Cluster_STATIC, address: "10.0.0.1", port: 443,
			tls: true, sni: "kubernetes.default.svc", san: "kubernetes.default.svc", sanType: tlsv3.SubjectAltNameMatcher_DNS, clientTL: true,
		},
		"plain http on the default port": {
			target: model.Target{Ref: grafana, Upstream: plain(t, "http://grafana.monitoring")},
			name:   "grafana_demo", typ: clusterv3.Cluster_STRICT_DNS, address: "grafana.monitoring", port: 80,
		},
		"ipv6 upstream": {
			target: model.Target{Ref: auth, Upstream: plain(t, "http://[::1]:8080")},
			name:   "auth", typ: clusterv3.Cluster_STATIC, address: "::1", port: 8080,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate(t, tc.target)
			if len(res.Clusters) != 1 {
				t.Fatalf("got %d clusters, want 1", len(res.Clusters))
			}
			c := res.Clusters[0]
			if c.Name != tc.name || c.GetType() != tc.typ {
				t.Errorf("cluster %q of type %v, want %q of type %v", c.Name, c.GetType(), tc.name, tc.typ)
			}
			if c.ConnectTimeout.AsDuration() != 5*time.Second {
				t.Errorf("connect timeout %v, want 5s", c.ConnectTimeout.AsDuration())
			}
			sa := c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress()
			if sa.Address != tc.address || sa.GetPortValue() != tc.port {
				t.Errorf("endpoint %s:%d, want %s:%d", sa.Address, sa.GetPortValue(), tc.address, tc.port)
			}
			th := c.CircuitBreakers.Thresholds[0]
			if th.MaxRequests.GetValue() < 100_000 || th.MaxConnections.GetValue() < 100_000 || th.MaxPendingRequests.GetValue() < 100_000 {
				t.Errorf("circuit breakers %v: watches need far more than Envoy's default 1024", th)
			}
			digest := c.GetMetadata().GetFilterMetadata()[MetadataNamespace].GetFields()[CredentialsDigestKey].GetStringValue()
			if !tc.tls {
				if c.TransportSocket != nil || c.Metadata != nil {
					t.Errorf("plain http upstream has a transport socket %v or metadata %v", c.TransportSocket, c.Metadata)
				}
				return
			}
			if digest == "" || digest != credentialsDigest(tc.target.Upstream) {
				t.Errorf("credentials digest %q, want %q", digest, credentialsDigest(tc.target.Upstream))
			}
			ctx := upstreamTLSOf(t, c)
			if ctx.Sni != tc.sni {
				t.Errorf("SNI %q, want %q", ctx.Sni, tc.sni)
			}
			combined := ctx.CommonTlsContext.GetCombinedValidationContext()
			if got := combined.GetValidationContextSdsSecretConfig(); !proto.Equal(got, sdsSecret("ca_"+tc.name)) {
				t.Errorf("trusted CA from %v, want secret ca_%s over ADS", got, tc.name)
			}
			if sec := secretNamed(res, "ca_"+tc.name); sec.GetValidationContext().GetTrustedCa().GetInlineString() != string(tc.target.Upstream.CA) {
				t.Error("secret ca_" + tc.name + " does not hold the upstream's CA")
			}
			wantSAN := []*tlsv3.SubjectAltNameMatcher{{SanType: tc.sanType, Matcher: exact(tc.san)}}
			if diff := cmp.Diff(wantSAN, combined.GetDefaultValidationContext().GetMatchTypedSubjectAltNames(), protocmp.Transform()); diff != "" {
				t.Errorf("SAN matchers (-want +got):\n%s", diff)
			}
			if len(ctx.CommonTlsContext.TlsCertificates) != 0 || ctx.CommonTlsContext.GetValidationContext() != nil {
				t.Error("credentials inlined in the cluster; they go over SDS")
			}
			refs := ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs
			if got := len(refs) == 1; got != tc.clientTL {
				t.Fatalf("client certificate present = %v, want %v", got, tc.clientTL)
			}
			if tc.clientTL {
				if !proto.Equal(refs[0], sdsSecret("client_"+tc.name)) {
					t.Errorf("client certificate from %v, want secret client_%s over ADS", refs[0], tc.name)
				}
				cert := secretNamed(res, "client_"+tc.name).GetTlsCertificate()
				if cert.GetCertificateChain().GetInlineString() != string(tc.target.Upstream.ClientCert) || cert.GetPrivateKey().GetInlineString() != string(tc.target.Upstream.ClientKey) {
					t.Error("secret client_" + tc.name + " does not hold the edge's client certificate and key")
				}
			}
		})
	}
}

func TestListener(t *testing.T) {
	opts := goldenOptions(t)
	opts.ExtAuthzCluster = "authz"
	opts.ExtAuthzTimeout = 750 * time.Millisecond
	res, err := Translate(model.New(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners) != 1 || res.Listeners[0].Name != "https" {
		t.Fatalf("listeners %v, want one named https", res.Listeners)
	}
	fc := res.Listeners[0].FilterChains[0]
	down := &tlsv3.DownstreamTlsContext{}
	if err := fc.TransportSocket.GetTypedConfig().UnmarshalTo(down); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"h2", "http/1.1"}, down.CommonTlsContext.AlpnProtocols); diff != "" {
		t.Errorf("ALPN (-want +got):\n%s", diff)
	}
	if refs := down.CommonTlsContext.TlsCertificateSdsSecretConfigs; len(refs) != 1 || !proto.Equal(refs[0], sdsSecret("serving")) || len(down.CommonTlsContext.TlsCertificates) != 0 {
		t.Errorf("serving certificate from %v (inline %v), want secret serving over ADS", refs, down.CommonTlsContext.TlsCertificates)
	}
	if cert := secretNamed(res, "serving").GetTlsCertificate(); cert.GetCertificateChain().GetInlineString() != string(opts.ServingCert) || cert.GetPrivateKey().GetInlineString() != string(opts.ServingKey) {
		t.Error("secret serving does not hold the serving certificate and key")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	sr := hcm.GetScopedRoutes()
	if sr.GetName() != "edge" || sr.GetScopedRds().GetScopedRdsConfigSource().GetAds() == nil || sr.GetRdsConfigSource().GetAds() == nil {
		t.Errorf("routes come from %v, want scoped RDS %q and RDS over ADS", sr, "edge")
	}
	if f := sr.GetScopeKeyBuilder().GetFragments(); len(f) != 1 || f[0].GetHeaderValueExtractor().GetName() != ScopeHeader {
		t.Errorf("scope key from %v, want the header %s alone", f, ScopeHeader)
	}
	if !hcm.NormalizePath.GetValue() || !hcm.MergeSlashes || hcm.PathWithEscapedSlashesAction != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Error("paths must be normalised, slashes merged and escaped slashes refused")
	}
	var upgrades []string
	for _, u := range hcm.UpgradeConfigs {
		upgrades = append(upgrades, u.UpgradeType)
	}
	if diff := cmp.Diff([]string{"websocket", "SPDY/3.1"}, upgrades); diff != "" {
		t.Errorf("upgrades (-want +got):\n%s", diff)
	}
	var names []string
	for _, f := range hcm.HttpFilters {
		names = append(names, f.Name)
	}
	// The scope filter must run first (ext_authz reads the route), the header-lists Lua filter
	// after ext_authz (it reads its metadata) and before the router.
	if diff := cmp.Diff([]string{"keygate.route_scope", "envoy.filters.http.ext_authz", "envoy.filters.http.lua", "envoy.filters.http.router"}, names); diff != "" {
		t.Errorf("filters (-want +got):\n%s", diff)
	}
	authz := &extauthzv3.ExtAuthz{}
	if err := hcm.HttpFilters[1].GetTypedConfig().UnmarshalTo(authz); err != nil {
		t.Fatal(err)
	}
	gs := authz.GetGrpcService()
	if gs.GetEnvoyGrpc().GetClusterName() != "authz" || gs.GetTimeout().AsDuration() != 750*time.Millisecond {
		t.Errorf("ext_authz service %v, want cluster authz with timeout 750ms", gs)
	}
	if authz.FailureModeAllow || authz.StatusOnError.GetCode() != 503 {
		t.Errorf("ext_authz must fail closed with 503: failure_mode_allow %v, status_on_error %v", authz.FailureModeAllow, authz.StatusOnError)
	}
	// What each check carries: the v3 API, the headers extauthz reads and nothing else (no body,
	// no peer certificate, no TLS session), without Envoy's own headers.
	if authz.TransportApiVersion != corev3.ApiVersion_V3 || authz.WithRequestBody != nil || authz.IncludePeerCertificate ||
		authz.IncludeTlsSession || authz.EncodeRawHeaders || !gs.GetEnvoyGrpc().GetSkipEnvoyHeaders() {
		t.Errorf("ext_authz sends more than extauthz reads: %v", authz)
	}
	var allowed []string
	for _, p := range authz.GetAllowedHeaders().GetPatterns() {
		allowed = append(allowed, p.GetExact())
	}
	if diff := cmp.Diff([]string{"authorization", "upgrade", "connection"}, allowed); diff != "" {
		t.Errorf("allowed headers (-want +got):\n%s", diff)
	}
	// Identity headers a client could forge are stripped before any filter (edgepath.StrippedByEdge).
	var early []*earlymutationv3.HeaderMutation
	for _, e := range hcm.EarlyHeaderMutationExtensions {
		m := &earlymutationv3.HeaderMutation{}
		if err := e.GetTypedConfig().UnmarshalTo(m); err != nil {
			t.Fatal(err)
		}
		early = append(early, m)
	}
	if len(early) != 1 {
		t.Fatalf("%d early header mutations, want 1", len(early))
	}
	var stripped []string
	for _, m := range early[0].GetMutations() {
		if p := m.GetRemoveOnMatch().GetKeyMatcher(); p != nil && p.GetIgnoreCase() {
			stripped = append(stripped, p.GetPrefix()+"*")
		} else if r := m.GetRemove(); r != "" {
			stripped = append(stripped, r)
		}
	}
	want := []string{"impersonate-*", "x-remote-*", "x-webauth-user", "x-webauth-email", "x-webauth-name", "x-webauth-login", "x-webauth-role", "x-webauth-groups"}
	if diff := cmp.Diff(want, stripped); diff != "" {
		t.Errorf("headers stripped before the filters (-want +got):\n%s", diff)
	}
}

func TestTranslateErrors(t *testing.T) {
	noCA := secure(t, "https://127.0.0.1:6443")
	noCA.CA = nil
	halfCert := secure(t, "https://127.0.0.1:6443")
	halfCert.ClientKey = nil
	noServing := goldenOptions(t)
	noServing.ServingKey = nil
	noPort := goldenOptions(t)
	noPort.ListenPort = 0
	plainWithToken := plain(t, "http://127.0.0.1:6443")
	plainWithToken.Token = "abc"
	tests := map[string]struct {
		model model.Model
		opts  Options
		want  string
	}{
		"https upstream without a CA": {model.New(model.Target{Ref: demo, Upstream: noCA}), goldenOptions(t), `cluster "demo": https upstream https://127.0.0.1:6443 has no CA`},
		"client cert without key":     {model.New(model.Target{Ref: demo, Upstream: halfCert}), goldenOptions(t), "client certificate and key: both or neither"},
		"invalid target name":         {model.New(model.Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "../x"}, Upstream: plain(t, "http://127.0.0.1:1")}), goldenOptions(t), `cluster "../x" is not valid`},
		"upstream without url":        {model.New(model.Target{Ref: demo}), goldenOptions(t), "upstream has no URL"},
		"no serving key":              {model.New(), noServing, "the serving certificate and key are required"},
		"no listen port":              {model.New(), noPort, "listen port 0"},
		"token over plain http":       {model.New(model.Target{Ref: demo, Upstream: plainWithToken}), goldenOptions(t), "a bearer token for the http upstream http://127.0.0.1:6443; it needs https"},
		"token with a line break":     {model.New(model.Target{Ref: demo, Upstream: withToken(t, "https://127.0.0.1:6443", "abc\r\nX-Evil: 1")}), goldenOptions(t), "bearer token: byte 3 is not a visible ASCII character"},
		"token with a space":          {model.New(model.Target{Ref: demo, Upstream: withToken(t, "https://127.0.0.1:6443", "Bearer abc")}), goldenOptions(t), "bearer token: byte 6"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Translate(tc.model, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Translate error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Equal models in any order translate to equal bytes: what makes the server's content hash
// (and so "an unchanged reload pushes nothing") work.
func TestTranslateIsDeterministic(t *testing.T) {
	targets := []model.Target{
		{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")},
		{Ref: vc1, Upstream: secure(t, "https://127.0.0.1:7443")},
		{Ref: grafana, Upstream: plain(t, "http://127.0.0.1:3000")},
		{Ref: mgmt, Upstream: secure(t, "https://127.0.0.1:9443")},
		{Ref: auth, Upstream: plain(t, "http://127.0.0.1:8080")},
		{Ref: oidc, Upstream: withToken(t, "https://127.0.0.1:5556", "t0ken")},
	}
	first := marshalAll(t, translate(t, targets...))
	for i := range 10 {
		shuffled := append([]model.Target(nil), targets...)
		rand.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if got := marshalAll(t, translate(t, shuffled...)); got != first {
			t.Fatalf("shuffle %d translated differently", i)
		}
	}
}

func marshalAll(t *testing.T, r Resources) string {
	t.Helper()
	var b strings.Builder
	opts := proto.MarshalOptions{Deterministic: true}
	ms := []proto.Message{r.Listeners[0]}
	for _, sc := range r.ScopedRoutes {
		ms = append(ms, sc)
	}
	for _, rc := range r.Routes {
		ms = append(ms, rc)
	}
	for _, m := range append(ms, clusterMessages(r)...) {
		data, err := opts.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func clusterMessages(r Resources) []proto.Message {
	var ms []proto.Message
	for _, c := range r.Clusters {
		ms = append(ms, c)
	}
	for _, sec := range r.Secrets {
		ms = append(ms, sec)
	}
	return ms
}

func secretNamed(r Resources, name string) *tlsv3.Secret {
	for _, s := range r.Secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func TestLimits(t *testing.T) {
	base := Options{ListenAddress: "0.0.0.0", ListenPort: 8443, ServingCert: []byte("c"), ServingKey: []byte("k")}
	withLimits := func(l Limits) Options { o := base; o.Limits = l; return o }
	t.Run("defaults", func(t *testing.T) {
		if got := withLimits(Limits{}).withDefaults().Limits; !reflect.DeepEqual(got, DefaultLimits) {
			t.Errorf("zero limits became %+v, want DefaultLimits", got)
		}
		if got := withLimits(Limits{StreamIdleTimeout: time.Second}).withDefaults().Limits; got.StreamIdleTimeout != time.Second || got.RequestHeadersTimeout != DefaultLimits.RequestHeadersTimeout {
			t.Errorf("a set field is kept, the others defaulted: %+v", got)
		}
	})
	for name, tc := range map[string]struct {
		limits Limits
		want   string
	}{
		"negative header timeout": {Limits{RequestHeadersTimeout: -time.Second}, "request headers timeout -1s is negative"},
		"negative idle timeout":   {Limits{StreamIdleTimeout: -time.Second}, "stream idle timeout -1s is negative"},
		"huge headers":            {Limits{MaxRequestHeadersKB: 9000}, "at most 8192"},
		"tiny stream window":      {Limits{InitialStreamWindowSize: 1024}, "initial stream window 1024"},
		"huge connection window":  {Limits{InitialConnectionWindowSize: 1 << 31}, "initial connection window 2147483648"},
	} {
		t.Run(name, func(t *testing.T) {
			err := withLimits(tc.limits).withDefaults().validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
