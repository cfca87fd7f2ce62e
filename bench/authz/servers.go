package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // the do-nothing server's profiles, as extauthz's --pprof-address
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate-dev/keygate/extauthz/server"
	"github.com/keygate-dev/keygate/internal/edgepath"
)

// The bench runs its upstream and its do-nothing ext_authz server as separate processes (this
// binary again, with -role), so that /proc measures each alone.

// upstreamBody is what the upstream answers to every request: 206 bytes, as in the run.
var upstreamBody = []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]` + strings.Repeat(" ", 206-83) + "}\n")

// expectHeader is sent with every request of the load, in every case: what the upstream must
// receive when the request is let through (upstreamSees). The same header in every case, so that
// no case parses more than another.
const expectHeader = "X-Bench-Expect"

// What the upstream must receive: the client's key, untouched (no auth, api_key_auth), or the
// identity the check set (Impersonate-User: bench) and no key (every case that checks in
// ext_authz or in the in-Envoy module: what the edge's routes rely on).
const (
	expectKey      = "key"
	expectIdentity = "identity"
)

func serveUpstream(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if err := upstreamSees(r.Header); err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(upstreamBody)
	})
	return http.ListenAndServe(addr, mux)
}

// upstreamSees checks the headers of a request that reached the upstream against expectHeader.
func upstreamSees(h http.Header) error {
	auth, user := h.Values("Authorization"), h.Values("Impersonate-User")
	switch want := h.Get(expectHeader); want {
	case expectKey:
		if len(auth) != 1 || len(user) != 0 {
			return fmt.Errorf("want the key and no identity, got Authorization %q, Impersonate-User %q", auth, user)
		}
	case expectIdentity:
		if len(auth) != 0 || len(user) != 1 || user[0] != "bench" {
			return fmt.Errorf("want Impersonate-User bench and no key, got Authorization %q, Impersonate-User %q", auth, user)
		}
	default:
		return fmt.Errorf("%s %q", expectHeader, want)
	}
	return nil
}

// nullAuthz is the do-nothing ext_authz server: a SHA-256 of the bearer key and a map lookup,
// the least a real check can do. It knows the bench's keys by digest.
type nullAuthz struct {
	authv3.UnimplementedAuthorizationServer
	outcomes outcomes
}

// outcomes is the do-nothing servers' table (benchEnv.keyTable): key digest → HTTP status (200
// allowed).
type outcomes map[string]int

// status is the do-nothing check of an Authorization header: the bearer key's SHA-256 looked up,
// 401 for a key the table does not hold.
func (o outcomes) status(authorization string) int {
	sum := sha256.Sum256([]byte(strings.TrimPrefix(authorization, "Bearer ")))
	if code, ok := o[hex.EncodeToString(sum[:])]; ok {
		return code
	}
	return http.StatusUnauthorized
}

func (n *nullAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	code := n.outcomes.status(req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"])
	if code == http.StatusOK {
		switch req.GetAttributes().GetContextExtensions()[benchResponse] {
		case responseBefore:
			return extauthzOK(true), nil
		case responseAfter:
			return extauthzOK(false), nil
		}
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

// extauthzOK is the OK response extauthz answers for the bench's allowed key on a Kubernetes
// route: the identity headers, the groups as dynamic metadata for the Lua filter, and what it
// removes. before is the response before issue 15, which also removed the six Grafana
// auth-proxy headers and named the target in a response header; now the route does both.
func extauthzOK(before bool) *authv3.CheckResponse {
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	ok := &authv3.OkHttpResponse{
		Headers: []*corev3.HeaderValueOption{set("Impersonate-User", "bench"), set("Impersonate-Group", "loft:user:bench"),
			set("Impersonate-Extra-Loft-Access-Key", "bench-allowed")},
		HeadersToRemove: []string{"authorization"},
	}
	if before {
		ok.HeadersToRemove = append(ok.HeadersToRemove, "x-webauth-user", "x-webauth-email", "x-webauth-name", "x-webauth-login", "x-webauth-role", "x-webauth-groups")
		ok.ResponseHeadersToAdd = []*corev3.HeaderValueOption{set("X-Keygate-Target", "kubernetes/cluster/bench")}
	}
	md, _ := structpb.NewStruct(map[string]any{edgepath.MetadataHeaderLists: map[string]any{
		"Impersonate-Group": []any{"loft:user:bench", "system:authenticated"}}})
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}, DynamicMetadata: md}
}

// serveNullAuthz serves the do-nothing server on addr and its profiles on pprofAddr, with one
// gRPC server option if option names one: "fixed-windows" fixes its HTTP/2 windows at 1 MiB,
// which turns off gRPC's BDP estimation and its pings (by default they start at 64 KiB and
// grow); "stream-workers" serves streams from a pool of streamWorkers goroutines
// (grpc.NumStreamWorkers), whose stacks have grown already, rather than from a new goroutine
// each; "adaptive-stacks" is the process run with GODEBUG=adaptivestackstart=1 (new goroutines
// start with the average stack size rather than 8 KiB); "extauthz-options" are extauthz's
// (server.GRPCServerOptions: stream workers, and CheckRequests decoded for what a check reads).
// streamWorkers is enough for every check in flight at the bench's connection counts: a worker
// holds a stream from its headers to its answer, and a stream no worker is free for gets a
// goroutine of its own.
const streamWorkers = 64

func serveNullAuthz(addr, keysFile, pprofAddr, option string) error {
	table, err := readOutcomes(keysFile)
	if err != nil {
		return err
	}
	n := &nullAuthz{outcomes: table}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { _ = http.ListenAndServe(pprofAddr, nil) }() // net/http/pprof's handlers
	var opts []grpc.ServerOption
	switch option {
	case "fixed-windows":
		opts = append(opts, grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(1<<20))
	case "stream-workers":
		opts = append(opts, grpc.NumStreamWorkers(streamWorkers))
	case "adaptive-stacks": // GODEBUG, set by the bench when it starts the process
	case "extauthz-options":
		opts = append(opts, server.GRPCServerOptions()...)
	case "":
	default:
		return fmt.Errorf("no gRPC option %q", option)
	}
	gs := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(gs, n)
	return gs.Serve(lis)
}

// readOutcomes reads the do-nothing servers' table from keysFile.
func readOutcomes(keysFile string) (outcomes, error) {
	data, err := os.ReadFile(keysFile)
	if err != nil {
		return nil, err
	}
	table := outcomes{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var digest string
		var code int
		if _, err := fmt.Sscan(line, &digest, &code); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", keysFile, line, err)
		}
		table[digest] = code
	}
	return table, nil
}

// nullHTTPAuthz is the do-nothing server for ext_authz's HTTP mode (http_service): the same
// check as nullAuthz's (a SHA-256 of the bearer key, the same table) and the same decision as
// its own minimal answers, in HTTP. Envoy sends it a request with the client's method, path and
// host and the allowed headers (the key), and no body; a 200 lets the client's request through
// with the answer's headers that allowed_upstream_headers names (Impersonate-User) set and the
// headers x-envoy-auth-headers-to-remove names removed; any other status is the client's answer.
type nullHTTPAuthz struct {
	outcomes outcomes
}

// The OK answer's header values, shared by every answer (read only).
var (
	impersonateBench = []string{"bench"}
	removeKey        = []string{"authorization"}
	textPlain        = []string{"text/plain"}
	deniedBody       = []byte("denied")
)

func (n *nullHTTPAuthz) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := n.outcomes.status(r.Header.Get("Authorization"))
	h := w.Header()
	if code == http.StatusOK {
		// nullAuthz's OK: Impersonate-User set (overwritten if the request had one), the key
		// removed.
		h["Impersonate-User"] = impersonateBench
		h["X-Envoy-Auth-Headers-To-Remove"] = removeKey
		w.WriteHeader(http.StatusOK)
		return
	}
	// nullAuthz's denial: the status and the body "denied".
	h["Content-Type"] = textPlain
	w.WriteHeader(code)
	_, _ = w.Write(deniedBody)
}

// serveNullHTTPAuthz serves nullHTTPAuthz on addr over HTTP/1.1 and cleartext HTTP/2 (prior
// knowledge, as Envoy's cluster with http2_protocol_options speaks it), and its profiles on
// pprofAddr.
func serveNullHTTPAuthz(addr, keysFile, pprofAddr string) error {
	table, err := readOutcomes(keysFile)
	if err != nil {
		return err
	}
	go func() { _ = http.ListenAndServe(pprofAddr, nil) }() // net/http/pprof's handlers
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: addr, Handler: &nullHTTPAuthz{outcomes: table}, Protocols: &protocols}
	return srv.ListenAndServe()
}
