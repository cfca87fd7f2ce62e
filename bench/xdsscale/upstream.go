package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keygate-dev/keygate/internal/pki"
)

// Every target is a connected cluster at the same upstream address, with its own TLS server
// name (SNI, and the DNS name its certificate must carry), so that the upstream can tell which
// target a request came through. Moving a target's upstream moves it to a second port.

// targetHost is target i's TLS server name.
func targetHost(i int) string { return targetName(i) + ".bench.keygate.test" }

// upstream is an HTTPS server standing in for every connected cluster's API server. It requires
// the edge's client certificate (so each target's client-certificate secret must have reached
// Envoy) and presents a certificate for the name the client asked for (so each target's CA
// secret and name check are exercised). It answers requests through the edge with what it saw,
// and the Kubernetes source's discovery of virtual clusters (list and watch of Services and
// Namespaces) as an API server without virtual clusters would.
type upstream struct {
	ports  [2]int // the first address, and the one moved targets move to
	ca     *pki.CA
	server *http.Server
	certs  sync.Map // server name → *tls.Certificate
}

// reply is what the upstream answers through the edge.
type reply struct {
	Local      string `json:"local"`      // the address the request reached
	ServerName string `json:"serverName"` // the SNI: which target it went through
	ClientCN   string `json:"clientCN"`
}

// newUpstream listens on two loopback ports.
func newUpstream(ca *pki.CA) (*upstream, error) {
	u := &upstream{ca: ca}
	u.server = &http.Server{
		Handler: http.HandlerFunc(u.serve),
		TLSConfig: &tls.Config{
			GetCertificate: u.certificate,
			ClientAuth:     tls.RequireAndVerifyClientCert,
			ClientCAs:      ca.Pool(),
		},
	}
	for i := range u.ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			u.close()
			return nil, fmt.Errorf("upstream: %w", err)
		}
		u.ports[i] = l.Addr().(*net.TCPAddr).Port
		go func() {
			if err := u.server.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(os.Stderr, "upstream %s: %v\n", l.Addr(), err)
			}
		}()
	}
	return u, nil
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v1/services", "/api/v1/namespaces":
		emptyKubeList(w, r)
		return
	}
	rep := reply{}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		rep.Local = a.String()
	}
	if r.TLS != nil {
		rep.ServerName = r.TLS.ServerName
		if len(r.TLS.PeerCertificates) > 0 {
			rep.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// emptyKubeList answers a list or watch of Services or Namespaces as a Kubernetes API server
// holding none: an empty list, or a watch that stays open without events (after the bookmark
// that ends the initial events, if the client asked for them).
func emptyKubeList(w http.ResponseWriter, r *http.Request) {
	kind := "Service"
	if strings.HasSuffix(r.URL.Path, "namespaces") {
		kind = "Namespace"
	}
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		fmt.Fprintf(w, `{"kind":%q,"apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`, kind+"List")
		return
	}
	w.WriteHeader(http.StatusOK)
	if q.Get("sendInitialEvents") == "true" {
		fmt.Fprintf(w, `{"type":"BOOKMARK","object":{"kind":%q,"apiVersion":"v1","metadata":{"resourceVersion":"1","annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n", kind)
	}
	http.NewResponseController(w).Flush()
	<-r.Context().Done()
}

// certificate issues (once per name) a serving certificate for the name the client asked for.
func (u *upstream) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" {
		return nil, errors.New("no server name (SNI)")
	}
	if c, ok := u.certs.Load(name); ok {
		return c.(*tls.Certificate), nil
	}
	pair, err := u.ca.Server(name, name)
	if err != nil {
		return nil, err
	}
	c, err := pair.TLS()
	if err != nil {
		return nil, err
	}
	u.certs.Store(name, &c)
	return &c, nil
}

// issue issues the serving certificates of targets 0..n-1 ahead of the run, as the connected
// clusters' API servers have theirs: otherwise the upstream would sign them while xds and Envoy
// first connect, on the same cores, and the run would time the bench's certificate authority.
func (u *upstream) issue(n int) error {
	for i := range n {
		if _, err := u.certificate(&tls.ClientHelloInfo{ServerName: targetHost(i)}); err != nil {
			return err
		}
	}
	return nil
}

// url is the upstream URL of the first address, or of the second if moved.
func (u *upstream) url(moved bool) string {
	port := u.ports[0]
	if moved {
		port = u.ports[1]
	}
	return "https://127.0.0.1:" + strconv.Itoa(port)
}

func (u *upstream) close() { u.server.Close() }

// allowAll is an ext_authz that allows every request: the bench measures xds and Envoy, not the
// access-key check (extauthz and Redis have their own tests).
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}, nil
}

// startAllowAll serves allowAll on a free loopback port.
func startAllowAll() (*grpc.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, allowAll{})
	go g.Serve(l)
	return g, l.Addr().String(), nil
}
