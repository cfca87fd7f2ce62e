package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/keygate-dev/keygate/internal/pki"
)

// Every target has its own loopback address (127.0.0.0/8 is all local on Linux), so that the
// upstream can tell which target a request came through: it answers with the address it was
// reached on. All addresses share one port and one HTTPS server.

// targetIP is target i's upstream address; moved is the address its upstream moves to when the
// bench changes it. The last octet avoids 0 and 255.
func targetIP(i int, moved bool) string {
	second := 10
	if moved {
		second = 20
	}
	return fmt.Sprintf("127.%d.%d.%d", second, i/250, i%250+1)
}

// upstream is an HTTPS echo server, standing in for a cluster's API server: it requires the
// edge's client certificate (so each target's client-certificate secret must have reached Envoy)
// and presents a certificate for the address it was reached on (so each target's CA secret and
// IP SAN check are exercised).
type upstream struct {
	port   int
	ca     *pki.CA
	server *http.Server
	certs  sync.Map // IP → *tls.Certificate
	ls     []net.Listener
}

// reply is what the upstream answers.
type reply struct {
	Local    string `json:"local"` // the address the request reached: which target it went through
	ClientCN string `json:"clientCN"`
}

func newUpstream(ca *pki.CA) *upstream {
	u := &upstream{ca: ca}
	u.server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rep := reply{}
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				rep.Local = a.String()
			}
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				rep.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(rep)
		}),
		TLSConfig: &tls.Config{
			GetCertificate: u.certificate,
			ClientAuth:     tls.RequireAndVerifyClientCert,
			ClientCAs:      ca.Pool(),
		},
	}
	return u
}

// certificate issues (once per address) a serving certificate for the address the client
// connected to.
func (u *upstream) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host, _, err := net.SplitHostPort(hello.Conn.LocalAddr().String())
	if err != nil {
		return nil, err
	}
	if c, ok := u.certs.Load(host); ok {
		return c.(*tls.Certificate), nil
	}
	pair, err := u.ca.Server(host, host)
	if err != nil {
		return nil, err
	}
	c, err := pair.TLS()
	if err != nil {
		return nil, err
	}
	u.certs.Store(host, &c)
	return &c, nil
}

// listen serves on ip at the upstream's port (chosen by the first call).
func (u *upstream) listen(ip string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(u.port)))
	if err != nil {
		return fmt.Errorf("upstream: listen on %s: %w", ip, err)
	}
	if u.port == 0 {
		u.port = l.Addr().(*net.TCPAddr).Port
	}
	u.ls = append(u.ls, l)
	go func() {
		if err := u.server.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("upstream %s: %v\n", ip, err)
		}
	}()
	return nil
}

// url is the upstream URL of an address.
func (u *upstream) url(ip string) string {
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(u.port))
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
