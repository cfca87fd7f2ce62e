// Package grpctlstest brings the clients an attacker could point at a control-plane gRPC port
// (xds, extauthz), for the tests that show each is turned away.
package grpctlstest

import (
	"crypto/tls"
	"io"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/pki"
)

// Stranger is one client that must not get in.
type Stranger struct {
	Name string
	// Creds are its gRPC credentials.
	Creds credentials.TransportCredentials
	// TLS is its TLS configuration, nil for plaintext.
	TLS *tls.Config
	// Alert is what the server's TLS alert says to it (see Refusal), "" for plaintext.
	Alert string
}

// Strangers are a client without a certificate and one with a certificate from another CA (both
// trusting caFile for serverName, as a real client of the port would), and a plaintext one.
func Strangers(caFile, serverName string) ([]Stranger, error) {
	bare, err := grpctls.ClientConfig(caFile, "", "", serverName)
	if err != nil {
		return nil, err
	}
	other, err := pki.NewCA("an attacker's CA")
	if err != nil {
		return nil, err
	}
	pair, err := other.Client("keygate-envoy") // the right name, signed by the wrong CA
	if err != nil {
		return nil, err
	}
	cert, err := pair.TLS()
	if err != nil {
		return nil, err
	}
	forged := bare.Clone()
	// Sent whatever CAs the server asks for (crypto/tls would otherwise send none).
	forged.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return []Stranger{
		{Name: "no client certificate", Creds: credentials.NewTLS(bare), TLS: bare, Alert: "certificate required"},
		{Name: "a client certificate from another CA", Creds: credentials.NewTLS(forged), TLS: forged, Alert: "unknown certificate authority"},
		{Name: "plaintext", Creds: insecure.NewCredentials()},
	}, nil
}

// Refusal opens a TLS connection to addr with cfg and reads the server's first bytes, and
// returns why the server refused the client: its TLS alert, e.g. "remote error: tls:
// certificate required". gRPC's own errors may only say "broken pipe", because with TLS 1.3 the
// server judges the client's certificate after the client's side of the handshake is done.
// It returns nil if the server spoke HTTP/2 to the client, i.e. let it in.
func Refusal(addr string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	// An HTTP/2 server speaks first (its SETTINGS frame); a server that refused the
	// certificate sends its alert instead and closes.
	var b [1]byte
	_, err = io.ReadFull(conn, b[:])
	return err
}
