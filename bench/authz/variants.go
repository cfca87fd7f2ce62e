package main

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// A variant is one change to the edge's ext_authz call, measured with the allowed key beside the
// case without it (-variants): one variable at a time, in the same rounds, so that the ratio
// between the two rows is what the change does. Each variant has its own Envoy cluster (so its
// own HTTP/2 connections) and listener.
type variant struct {
	flag  string // its name on the command line
	label string // its name in the tables
	authz string // the server it calls: "extauthz" or "null"
	// filter changes the ext_authz filter's configuration (e.g. google_grpc for envoy_grpc).
	filter func(f *extauthzv3.ExtAuthz, p envoyPorts)
	// http2 adds to the http2_protocol_options of the variant's cluster (YAML flow style, each
	// entry preceded by ", ").
	http2 string
	// response is the OK response the do-nothing server answers (responseBefore, responseAfter),
	// chosen by the route's context extension benchResponse; "" is its own minimal one.
	response string
	// serverOption, when set, gives the variant a do-nothing server of its own with this gRPC
	// server option (serveNullAuthz).
	serverOption string
	// baseline, when set, is a git revision: the variant calls extauthz built from it (-baseline).
	baseline string
	// noStats: Envoy keeps no statistics of the variant's cluster (a stats_matcher exclusion),
	// such as the gRPC client's per-method counters and the request time histogram.
	noStats bool
	// httpService, when set, makes the call ext_authz's HTTP mode (httpService): a plain HTTP
	// request to the do-nothing HTTP server (nullHTTPAuthz, process nullHTTP) instead of a gRPC
	// Check, over HTTP/1.1 (httpH1) or cleartext HTTP/2 (httpH2). Compared with the do-nothing
	// gRPC server (authz "null"): the same check on the other side.
	httpService string
}

// The protocols of an httpService variant's cluster.
const (
	httpH1 = "h1"
	httpH2 = "h2"
)

// nullHTTP is the process of the do-nothing HTTP server, and its role (runRole).
const nullHTTP = "null-http"

// baselineVariant calls extauthz built at rev, with the same Envoy configuration as the case it
// is compared with: what extauthz's own changes since rev did, Envoy's side of its answers
// included.
func baselineVariant(rev string) *variant {
	return &variant{flag: "baseline", label: "extauthz built at " + rev, authz: "extauthz", baseline: rev}
}

// cluster is the variant's Envoy cluster.
func (v *variant) cluster() string { return "v_" + strings.ReplaceAll(v.flag, "-", "_") }

// process is the server process the variant's checks reach.
func (v *variant) process() string {
	if v.httpService != "" {
		return nullHTTP
	}
	if v.serverOption != "" {
		return "null-" + v.serverOption
	}
	if v.baseline != "" {
		return "extauthz-baseline"
	}
	return v.authz
}

// benchResponse is the context extension that tells the do-nothing server which OK response to
// answer.
const benchResponse = "bench.response"

// The do-nothing server's OK responses besides its own: what extauthz answered for the bench's
// allowed key before its response was trimmed (issue 15), and after.
const (
	responseBefore = "before"
	responseAfter  = "after"
)

var allVariants = []*variant{
	{flag: "google_grpc", label: "google_grpc", authz: "extauthz",
		filter: func(f *extauthzv3.ExtAuthz, p envoyPorts) {
			g := f.GetGrpcService()
			g.TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
				TargetUri: fmt.Sprintf("127.0.0.1:%d", p.extauthz), StatPrefix: "extauthz"}}
		}},
	{flag: "streams-4", label: "at most 4 streams per connection", authz: "extauthz", http2: ", max_concurrent_streams: 4"},
	{flag: "envoy-headers", label: "x-envoy-internal and x-forwarded-for sent (skip_envoy_headers off)", authz: "extauthz",
		filter: func(f *extauthzv3.ExtAuthz, _ envoyPorts) {
			f.GetGrpcService().GetEnvoyGrpc().SkipEnvoyHeaders = false
		}},
	{flag: "no-cluster-stats", label: "no statistics of the extauthz cluster (stats_matcher)", authz: "extauthz", noStats: true},
	{flag: "envoy-windows-64k", label: "Envoy's HTTP/2 windows 64 KiB (stream), 1 MiB (connection)", authz: "extauthz",
		http2: ", initial_stream_window_size: 65536, initial_connection_window_size: 1048576"},
	{flag: "server-fixed-windows", label: "server with fixed 1 MiB HTTP/2 windows (no BDP pings)", authz: "null", serverOption: "fixed-windows"},
	{flag: "server-stream-workers", label: "server with 64 stream workers (grpc.NumStreamWorkers)", authz: "null", serverOption: "stream-workers"},
	{flag: "server-adaptive-stacks", label: "server with GODEBUG=adaptivestackstart=1", authz: "null", serverOption: "adaptive-stacks"},
	{flag: "server-extauthz-options", label: "server with extauthz's gRPC options (stream workers, partial CheckRequest decoding)", authz: "null", serverOption: "extauthz-options"},
	{flag: "response-before", label: "extauthz's OK response before issue 15", authz: "null", response: responseBefore},
	{flag: "response-after", label: "extauthz's OK response after issue 15", authz: "null", response: responseAfter},
	{flag: "http-service-h1", label: "HTTP mode (http_service) to a do-nothing HTTP server, HTTP/1.1", authz: "null", httpService: httpH1},
	{flag: "http-service-h2", label: "HTTP mode (http_service) to a do-nothing HTTP server, cleartext HTTP/2", authz: "null", httpService: httpH2},
}

// httpService makes f, the edge's filter configuration, call cluster in HTTP mode: the
// grpc_service replaced with an http_service with the same timeout and retry policy, every other
// setting kept. Envoy copies the edge's allowed_headers into the check's HTTP request (it adds
// the method, path and host, and a Content-Length of 0; the deprecated
// http_service.authorization_request.allowed_headers may not be set beside them); on a 200 it
// sets the answer's Impersonate-User on the request (the do-nothing servers' OK sets nothing
// else) and removes what the answer's x-envoy-auth-headers-to-remove lists, which Envoy reads
// whatever the matchers. A denial's status, headers and body are the client's answer, as a
// DeniedHttpResponse's. Context extensions (the route's target) are not sent in HTTP mode; the
// do-nothing server reads none for its own answers.
func httpService(f *extauthzv3.ExtAuthz, cluster, uri string) {
	g := f.GetGrpcService()
	f.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
		ServerUri: &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: g.GetTimeout()},
		AuthorizationResponse: &extauthzv3.AuthorizationResponse{AllowedUpstreamHeaders: &matcherv3.ListStringMatcher{
			Patterns: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "impersonate-user"}, IgnoreCase: true}}}},
		RetryPolicy: g.GetRetryPolicy(),
	}}
}

func variantNames() string {
	var names []string
	for _, v := range allVariants {
		names = append(names, v.flag)
	}
	return strings.Join(names, ", ")
}

// parseVariants reads -variants.
func parseVariants(list string) ([]*variant, error) {
	if strings.TrimSpace(list) == "all" {
		return allVariants, nil
	}
	var out []*variant
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		found := false
		for _, v := range allVariants {
			if v.flag == name {
				out, found = append(out, v), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-variants: no variant %q (have %s)", name, variantNames())
		}
	}
	return out, nil
}
