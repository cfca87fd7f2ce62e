package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// The bench runs its upstream and its do-nothing ext_authz server as separate processes (this
// binary again, with -role), so that /proc measures each alone.

// upstreamBody is what the upstream answers to every request: 206 bytes, as in the run.
var upstreamBody = []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]` + strings.Repeat(" ", 206-83) + "}\n")

func serveUpstream(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(upstreamBody)
	})
	return http.ListenAndServe(addr, mux)
}

// nullAuthz is the do-nothing ext_authz server: a SHA-256 of the bearer key and a map lookup,
// the least a real check can do. It knows the bench's keys by digest.
type nullAuthz struct {
	authv3.UnimplementedAuthorizationServer
	outcomes map[string]int // digest → HTTP status (200 allowed)
}

func (n *nullAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	auth := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
	sum := sha256.Sum256([]byte(strings.TrimPrefix(auth, "Bearer ")))
	code, ok := n.outcomes[hex.EncodeToString(sum[:])]
	if !ok {
		code = http.StatusUnauthorized
	}
	if code == http.StatusOK {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "Impersonate-User", Value: "bench"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
				HeadersToRemove: []string{"authorization"},
			}}}, nil
	}
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)}, Body: "denied",
		}}}, nil
}

func serveNullAuthz(addr, keysFile string) error {
	data, err := os.ReadFile(keysFile)
	if err != nil {
		return err
	}
	n := &nullAuthz{outcomes: map[string]int{}}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var digest string
		var code int
		if _, err := fmt.Sscan(line, &digest, &code); err != nil {
			return fmt.Errorf("%s: %q: %w", keysFile, line, err)
		}
		n.outcomes[digest] = code
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, n)
	return gs.Serve(lis)
}
