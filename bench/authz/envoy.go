package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/translate"
)

// The bench's Envoy has one listener per case and TLS setting, each the same connection
// manager with the case's filter (or none) before the router, and one route to the upstream
// (the target's prefix stripped, as the edge does). Only the filter differs between cases.

// benchRef is the target every request goes to.
var benchRef = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "bench"}

// requestPath is a list of pods in namespace default: a rule-scoped key's request goes through
// RequestInfo parsing.
var requestPath = benchRef.Prefix() + "api/v1/namespaces/default/pods"

type envoyPorts struct {
	admin, upstream, extauthz, null int
	// variantServers are the do-nothing servers of variants with gRPC options of their own, the
	// do-nothing HTTP server and a baseline extauthz, by process name (variant.process).
	variantServers map[string]int
	listeners      map[string]int // listenerName(case, tls) → port
}

func listenerName(c string, tls bool) string { return fmt.Sprintf("%s-tls-%t", c, tls) }

// filterSettings are what the cases' filters are configured with.
type filterSettings struct {
	apiKeys       map[string]string // api_key_auth's credentials: plain key → client name
	refusedClient string            // the client api_key_auth's route does not allow
	// table is the do-nothing server's and the in-Envoy module's: "<key digest> <status>" lines.
	table string
	// extAuthzTimeout bounds each ext_authz check (-extauthz-timeout); 0 is the edge's default.
	extAuthzTimeout time.Duration
}

// envoyConfig renders the bootstrap.
func envoyConfig(cases []benchCase, p envoyPorts, certFile, keyFile string, keys filterSettings) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}\n", p.admin)
	for _, c := range cases {
		if v := c.variant; v != nil && v.noStats {
			fmt.Fprintf(&b, "stats_config: {stats_matcher: {exclusion_list: {patterns: [{prefix: %q}]}}}\n", "cluster."+v.cluster()+".")
		}
	}
	b.WriteString("static_resources:\n  listeners:\n")
	for _, c := range cases {
		for _, tls := range []bool{false, true} {
			filter, perRoute, err := caseFilter(c, p, keys)
			if err != nil {
				return "", err
			}
			writeListener(&b, listenerName(c.name, tls), p.listeners[listenerName(c.name, tls)], tls, certFile, keyFile, filter, perRoute)
		}
	}
	b.WriteString("  clusters:\n")
	fmt.Fprintf(&b, "  - {name: upstream, connect_timeout: 1s, type: STATIC, load_assignment: {cluster_name: upstream, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]}}\n", p.upstream)
	type authzCluster struct {
		port     int
		protocol string // explicit_http_config's protocol options
	}
	// The same protocol options as envoy/bootstrap.yaml's extauthz cluster (a variant adds to its
	// HTTP/2 options, or speaks HTTP/1.1).
	http2 := func(more string) string {
		return "http2_protocol_options: {connection_keepalive: {interval: 30s, timeout: 5s}" + more + "}"
	}
	clusters := map[string]authzCluster{"extauthz": {p.extauthz, http2("")}, "nullauthz": {p.null, http2("")}}
	for _, c := range cases {
		if v := c.variant; v != nil {
			port, ok := p.variantServers[v.process()]
			if !ok {
				port = map[string]int{"extauthz": p.extauthz, "null": p.null}[v.process()]
			}
			protocol := http2(v.http2)
			if v.httpService == httpH1 {
				protocol = "http_protocol_options: {}"
			}
			clusters[v.cluster()] = authzCluster{port, protocol}
		}
	}
	for name, cl := range clusters {
		// The same cluster settings as envoy/bootstrap.yaml's extauthz cluster.
		fmt.Fprintf(&b, `  - name: %s
    connect_timeout: 1s
    type: STATIC
    load_assignment: {cluster_name: %s, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {%s}
    circuit_breakers: {thresholds: [{priority: DEFAULT, max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100000}]}
`, name, name, cl.port, cl.protocol)
	}
	return b.String(), nil
}

// caseFilter is the case's HTTP filter and its per-route settings (JSON), or "" for none.
func caseFilter(bc benchCase, p envoyPorts, keys filterSettings) (string, string, error) {
	switch c := bc.name; c {
	case caseNoAuth:
		return "", "", nil
	case caseInEnvoy, caseInEnvoyGoHooks:
		filter, err := inEnvoyFilter(c == caseInEnvoyGoHooks, keys.table)
		return filter, "", err
	case caseAPIKey:
		creds := make([]map[string]string, 0, len(keys.apiKeys))
		var allowed []string
		for k, client := range keys.apiKeys {
			creds = append(creds, map[string]string{"key": k, "client": client})
			if client != keys.refusedClient {
				allowed = append(allowed, client)
			}
		}
		filter, err := json.Marshal(map[string]any{"name": "envoy.filters.http.api_key_auth", "typed_config": map[string]any{
			"@type":       "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
			"credentials": creds, "key_sources": []map[string]string{{"header": "authorization"}}}})
		if err != nil {
			return "", "", err
		}
		route, err := json.Marshal(map[string]any{"envoy.filters.http.api_key_auth": map[string]any{
			"@type":           "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute",
			"allowed_clients": allowed}})
		return string(filter), string(route), err
	default: // the edge's own ext_authz filter, to extauthz or to the do-nothing server
		cluster := "extauthz"
		if bc.authz == "null" {
			cluster = "nullauthz"
		}
		if bc.variant != nil {
			cluster = bc.variant.cluster()
		}
		return extAuthzFilter(cluster, bc.variant, p, keys.extAuthzTimeout)
	}
}

// extAuthzFilter is the edge's ext_authz filter calling cluster, with v's change if v is set.
func extAuthzFilter(cluster string, v *variant, p envoyPorts, timeout time.Duration) (string, string, error) {
	f := translate.ExtAuthzConfig(translate.Options{ExtAuthzCluster: cluster, ExtAuthzTimeout: timeout})
	ext := benchRef.ContextExtensions()
	if v != nil {
		if v.filter != nil {
			v.filter(f, p)
		}
		if v.httpService != "" {
			httpService(f, cluster, "http://"+addr(p.variantServers[v.process()]))
		}
		if v.response != "" {
			ext[benchResponse] = v.response
		}
	}
	cfg, err := anypb.New(f)
	if err != nil {
		return "", "", err
	}
	typed, err := protojson.Marshal(cfg)
	if err != nil {
		return "", "", err
	}
	filter := fmt.Sprintf(`{"name": "envoy.filters.http.ext_authz", "typed_config": %s}`, typed)
	route, err := json.Marshal(map[string]any{"envoy.filters.http.ext_authz": map[string]any{
		"@type":          "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
		"check_settings": map[string]any{"context_extensions": ext}}})
	return filter, string(route), err
}

func writeListener(b *strings.Builder, name string, port int, tls bool, certFile, keyFile, filter, perRoute string) {
	fmt.Fprintf(b, `  - name: %s
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %s
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: REJECT_REQUEST
          use_remote_address: true
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: %q}
                route: {cluster: upstream, prefix_rewrite: "/"}
`, name, port, strings.ReplaceAll(name, "-", "_"), benchRef.Prefix())
	if perRoute != "" {
		fmt.Fprintf(b, "                typed_per_filter_config: %s\n", perRoute)
	}
	b.WriteString("          http_filters:\n")
	if filter != "" {
		fmt.Fprintf(b, "          - %s\n", filter)
	}
	b.WriteString("          - {name: envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n")
	if tls {
		fmt.Fprintf(b, `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [http/1.1]
            tls_certificates: [{certificate_chain: {filename: %q}, private_key: {filename: %q}}]
`, certFile, keyFile)
	}
}
