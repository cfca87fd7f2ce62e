package main

import (
	"context"
	"fmt"
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// benchRef is the connected cluster every Check is for, as xds puts it on the route.
var benchRef = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "bench"}

// requestPath is a list of pods in namespace default, as in bench/authz.
var requestPath = benchRef.Prefix() + "api/v1/namespaces/default/pods"

// checkRequest is what Envoy's ext_authz filter sends for `GET requestPath` with the edge's
// configuration (xds/translate.ExtAuthzConfig): the peers, the route's context extensions, the
// request line and the headers it is allowed to send (the pseudo-headers Envoy always adds, and
// authorization).
func checkRequest(key string) *authv3.CheckRequest {
	addr := func(port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:            &authv3.AttributeContext_Peer{Address: addr(51234)},
		Destination:       &authv3.AttributeContext_Peer{Address: addr(9443)},
		ContextExtensions: benchRef.ContextExtensions(),
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "bench", Method: http.MethodGet, Path: requestPath, Host: "edge.bench", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "edge.bench", ":method": http.MethodGet, ":path": requestPath, ":scheme": "https",
				"authorization": "Bearer " + key,
			},
		}},
	}}
}

// answer is what a Check said.
type answer int

const (
	allowed answer = iota
	refused        // 401: the key is unknown (deleted) or disabled
)

// classify reads a Check's answer: allowed (gRPC OK with an OK response) or refused (401).
// Anything else (an error, another status) is an error: the bench's keys are either valid or
// revoked, so a 403 or a 503 would be a wrong answer, not a slow one.
func classify(resp *authv3.CheckResponse, err error) (answer, error) {
	if err != nil {
		return 0, fmt.Errorf("Check: %w", err)
	}
	code := codes.Code(resp.GetStatus().GetCode())
	switch {
	case code == codes.OK && resp.GetOkResponse() != nil:
		return allowed, nil
	case code != codes.OK && resp.GetDeniedResponse().GetStatus().GetCode() == http.StatusUnauthorized:
		return refused, nil
	}
	return 0, fmt.Errorf("Check: unexpected answer: gRPC %s, denied %v (%.200q)", code,
		resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
}

// check sends one Check and classifies its answer.
func check(ctx context.Context, c authv3.AuthorizationClient, req *authv3.CheckRequest) (answer, error) {
	return classify(c.Check(ctx, req))
}
