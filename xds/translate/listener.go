package translate

import (
	"fmt"
	"strings"
	"time"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// Filter names, as Envoy knows the extensions.
const (
	extAuthzFilter = wellknown.HTTPExternalAuthorization // envoy.filters.http.ext_authz
	routerFilter   = wellknown.Router                    // envoy.filters.http.router
	luaFilter      = wellknown.Lua                       // envoy.filters.http.lua
	// scopeFilter is the second Lua filter (see scopes.go); filters of one type need their own names.
	scopeFilter = "keygate.route_scope"
	hcmFilter   = wellknown.HTTPConnectionManager // envoy.filters.network.http_connection_manager
	tlsSocket   = wellknown.TransportSocketTLS    // envoy.transport_sockets.tls
	// earlyHeaderMutation is the HCM extension that changes a request's headers before any
	// filter or the routing sees them.
	earlyHeaderMutation = "envoy.http.early_header_mutation.header_mutation"

	// Upstream HTTP filters of a cluster with a bearer token, and the credential extension.
	credentialInjectorFilter = "envoy.filters.http.credential_injector"
	upstreamCodecFilter      = "envoy.filters.http.upstream_codec"
	genericCredential        = "envoy.http.injected_credentials.generic"
)

// httpsListener is the edge's one listener: TLS with the serving certificate, then an HTTP
// connection manager that normalises paths, picks each request's routing scope, checks every
// request with ext_authz and routes by scoped RDS.
// The serving certificate and key are the secret ServingSecretName, over SDS like the upstreams'
// credentials: a new serving certificate then replaces the TLS context in place, without
// draining the listener's connections, and the key is in no listener (LDS) resource.
func httpsListener(o Options) (*listenerv3.Listener, error) {
	hcm, err := connectionManager(o)
	if err != nil {
		return nil, err
	}
	hcmAny, err := pack(hcm)
	if err != nil {
		return nil, fmt.Errorf("http connection manager: %w", err)
	}
	tlsAny, err := pack(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(ServingSecretName)},
			// h2 first: kubectl and browsers multiplex over one connection. SPDY upgrades
			// (exec, port-forward) negotiate http/1.1.
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("downstream TLS: %w", err)
	}
	return &listenerv3.Listener{
		Name:                          ListenerName,
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(o.Limits.PerConnectionBufferLimitBytes),
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       o.ListenAddress,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: o.ListenPort},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       hcmFilter,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
			TransportSocket: &corev3.TransportSocket{
				Name:       tlsSocket,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsAny},
			},
		}},
	}, nil
}

// headerListsLua writes the multi-valued identity headers of extauthz's dynamic metadata as one
// header line per value (edgepath.HeaderListsLua, which static Envoy configurations share).
var headerListsLua = edgepath.HeaderListsLua

func connectionManager(o Options) (*hcmv3.HttpConnectionManager, error) {
	filters, err := httpFilters(o)
	if err != nil {
		return nil, err
	}
	strip, err := pack(stripIdentityHeaders())
	if err != nil {
		return nil, fmt.Errorf("early header mutation: %w", err)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     StatPrefix,
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: scopedRoutes(),
		// Routing and ext_authz must see the same path: normalise it before both, so that
		// /kubernetes/cluster/a/../b/ or //kubernetes/... cannot reach one target while being
		// judged as another. Escaped slashes (%2F) could do the same, so they are refused.
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		// kubectl exec/attach/port-forward use SPDY/3.1, newer kubectl and browsers WebSocket.
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{
			{UpgradeType: "websocket"},
			{UpgradeType: "SPDY/3.1"},
		},
		// The edge faces clients directly: X-Forwarded-For is set from the peer, not trusted.
		UseRemoteAddress: wrapperspb.Bool(true),
		// Identity headers a client could forge are gone before any filter runs, whatever the
		// route; ext_authz then sets the request's own (stripIdentityHeaders).
		EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{{Name: earlyHeaderMutation, TypedConfig: strip}},
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			// Some servers treat _ and - alike; dropping these keeps lookalikes such as
			// Impersonate_User away from the upstreams.
			HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_DROP_HEADER,
		},
		HttpFilters: filters,
	}
	applyLimits(hcm, o.Limits)
	return hcm, nil
}

// httpFilters is the edge's filter chain, in order.
func httpFilters(o Options) ([]*hcmv3.HttpFilter, error) {
	chain := []struct {
		name   string
		config proto.Message
	}{
		// First, so that every later filter (ext_authz reads the route's context extensions)
		// sees the route of the request's own scope.
		{scopeFilter, inlineLua(scopeLua)},
		{extAuthzFilter, ExtAuthzConfig(o)},
		{luaFilter, inlineLua(headerListsLua)},
		{routerFilter, &routerv3.Router{}},
	}
	filters := make([]*hcmv3.HttpFilter, 0, len(chain))
	for _, f := range chain {
		config, err := pack(f.config)
		if err != nil {
			return nil, fmt.Errorf("%s filter: %w", f.name, err)
		}
		filters = append(filters, &hcmv3.HttpFilter{Name: f.name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: config}})
	}
	return filters, nil
}

// stripIdentityHeaders removes, from every request before any filter sees it, each header a
// client could send to claim an identity upstream (edgepath.StrippedByEdge): Impersonate-* and
// X-Remote-* by prefix, and Grafana's default auth-proxy headers. Doing it here, once per
// request in Envoy's configuration, spares ext_authz listing them in every answer: extauthz
// removes only what it sets or what an Envoy without this may have let through
// (extauthz/server's headersToRemove). Names are matched in any letter case; Envoy has already
// dropped names with underscores (HeadersWithUnderscoresAction).
func stripIdentityHeaders() *earlymutationv3.HeaderMutation {
	var rules []*mutationv3.HeaderMutation
	for _, p := range edgepath.StrippedHeaderPrefixes {
		rules = append(rules, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{
			RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}, IgnoreCase: true}}}})
	}
	for _, h := range edgepath.DefaultGrafanaAuthProxyHeaders {
		rules = append(rules, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: strings.ToLower(h)}})
	}
	return &earlymutationv3.HeaderMutation{Mutations: rules}
}

// ExtAuthzConfig is the edge's ext_authz filter: what Envoy sends extauthz with every request
// and how it calls it. bench/authz measures Envoy with exactly this configuration.
func ExtAuthzConfig(o Options) *extauthzv3.ExtAuthz {
	o = o.withDefaults()
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			// Envoy's own gRPC client, not google_grpc (the gRPC library's): bench/authz
			// measured google_grpc at 1.5 times Envoy's CPU per check. skip_envoy_headers
			// leaves x-envoy-internal and x-forwarded-for out of every check, which extauthz
			// would only decode and ignore (less CPU for it, bench/README.md).
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: o.ExtAuthzCluster, SkipEnvoyHeaders: true}},
			Timeout:     durationpb.New(o.ExtAuthzTimeout),
			RetryPolicy: extAuthzRetry(),
		}},
		TransportApiVersion: corev3.ApiVersion_V3,
		// Envoy serialises every header it is allowed to into each CheckRequest; by default all
		// of them, which doubles Envoy's CPU per request (bench/authz). extauthz reads only these:
		// the key and the two that make a request a stream (extauthz/attributes). The identity
		// headers a client may forge are stripped before the filter runs
		// (stripIdentityHeaders), so there are none to send. No body (with_request_body
		// unset), no peer certificate and no TLS session are sent: those are off by default
		// and no decision needs them.
		AllowedHeaders: allowedHeaders(),
		// Fail closed: with extauthz down or slow, nothing gets through, and clients see
		// 503 (an outage), not 403 (a decision).
		FailureModeAllow: false,
		StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
}

// extAuthzRetry retries a check on another extauthz replica when it never got an answer from
// the first: the connection was refused or reset (a replica killed, a node lost), or the
// replica refused the stream or answered gRPC UNAVAILABLE (shutting down). A check reads only
// (its one write, a key's last use, is idempotent), so retrying cannot do harm; a slow replica
// is not retried (no timeout or deadline-exceeded condition), so an overloaded extauthz gets no
// more load from it. A refusal of a key is a gRPC OK and is never retried. The outlier
// detection of Envoy's bootstrap ejects the dead replica meanwhile (envoy/bootstrap.yaml), so
// retries only bridge the first few checks; docs/reliability.md has the figures.
func extAuthzRetry() *corev3.RetryPolicy {
	previousHosts, _ := anypb.New(&previoushostsv3.PreviousHostsPredicate{}) // an empty message always marshals
	return &corev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset,unavailable",
		NumRetries: wrapperspb.UInt32(2),
		// Envoy's default first backoff is a second; a check waits on it, and the other replica
		// is healthy, so retry at once-ish.
		RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(10 * time.Millisecond), MaxInterval: durationpb.New(100 * time.Millisecond)},
		// Never the replica that just failed.
		RetryHostPredicate: []*corev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &corev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: previousHosts},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

// allowedHeaders lists the request headers extauthz reads (see ExtAuthzConfig).
func allowedHeaders() *matcherv3.ListStringMatcher {
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}, IgnoreCase: true}
	}
	return &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
		exact("authorization"), exact("upgrade"), exact("connection"),
	}}
}

func inlineLua(source string) *luav3.Lua {
	return &luav3.Lua{DefaultSourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: source}}}
}

// pack validates m (nested messages in an Any are not checked by the outer ValidateAll) and
// wraps it in an Any. The encoding is deterministic (map entries sorted), so that equal
// configurations give equal bytes and an unchanged reload pushes nothing to Envoy.
func pack(m proto.Message) (*anypb.Any, error) {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return nil, err
		}
	}
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}

func inline(pem []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(pem)}}
}
