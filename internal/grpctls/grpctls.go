// Package grpctls is the mutual TLS of the control plane's gRPC ports (xds's ADS, extauthz's
// ext_authz): the flags every such server takes, a server tls.Config that demands a client
// certificate from a configured CA and re-reads its files when they change, and the one way
// out of TLS, plaintext on loopback only.
//
// Those ports hand out secrets (xds serves the edge's serving key and every upstream
// credential over SDS) and decide who may pass the edge (extauthz), so whoever can reach
// them must prove to be the edge's Envoy.
package grpctls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate-dev/keygate/internal/tlsfiles"
)

// Flag names, shared by xds and extauthz so that both are configured alike.
const (
	FlagCertFile         = "grpc-tls-cert-file"
	FlagKeyFile          = "grpc-tls-key-file"
	FlagClientCAFile     = "grpc-client-ca-file"
	FlagInsecureLoopback = "grpc-insecure-loopback"
)

// Config is the TLS of one gRPC server, as the flags give it.
type Config struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and key.
	CertFile, KeyFile string
	// ClientCAFile is the PEM bundle whose certificates may sign clients' certificates.
	ClientCAFile string
	// InsecureLoopback serves plaintext without client authentication; only on loopback.
	InsecureLoopback bool
}

// Register defines the flags on fs; what is the command's gRPC service for the help text.
func (c *Config) Register(fs *flag.FlagSet, what string) {
	fs.StringVar(&c.CertFile, FlagCertFile, "", "PEM certificate (chain) the "+what+" gRPC server presents; required unless --"+FlagInsecureLoopback)
	fs.StringVar(&c.KeyFile, FlagKeyFile, "", "PEM private key of --"+FlagCertFile)
	fs.StringVar(&c.ClientCAFile, FlagClientCAFile, "", "PEM CA bundle: gRPC clients (Envoy) must present a certificate it signed")
	fs.BoolVar(&c.InsecureLoopback, FlagInsecureLoopback, false, "serve gRPC in plaintext, without client certificates; refused unless the gRPC address is a loopback address (development only)")
}

// Validate checks the flags against the gRPC listen address addr (host:port): the three files,
// or plaintext on a loopback address, nothing in between. addrFlag names the address's flag
// in the errors.
func (c Config) Validate(addr, addrFlag string) error {
	files := map[string]string{FlagCertFile: c.CertFile, FlagKeyFile: c.KeyFile, FlagClientCAFile: c.ClientCAFile}
	if c.InsecureLoopback {
		var set []string
		for _, name := range []string{FlagCertFile, FlagKeyFile, FlagClientCAFile} {
			if files[name] != "" {
				set = append(set, "--"+name)
			}
		}
		if len(set) > 0 {
			return fmt.Errorf("--%s and %s: choose TLS or plaintext, not both", FlagInsecureLoopback, strings.Join(set, ", "))
		}
		return CheckLoopback(addr, addrFlag)
	}
	var errs []error
	for _, name := range []string{FlagCertFile, FlagKeyFile, FlagClientCAFile} {
		if files[name] == "" {
			errs = append(errs, fmt.Errorf("--%s is required: the gRPC port serves only mutual TLS (or, for development on loopback, set --%s)", name, FlagInsecureLoopback))
		}
	}
	return errors.Join(errs...)
}

// CheckLoopback refuses an address that is reachable from beyond this host: plaintext gRPC
// there would hand the edge's secrets to anyone on the network. An empty host listens on every
// interface, and a name could resolve to anything, so only loopback IPs and "localhost" pass.
func CheckLoopback(addr, addrFlag string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q is not host:port", addrFlag, addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--%s is refused with --%s %q: plaintext gRPC is allowed on a loopback address only (127.0.0.1, ::1, localhost); serve mutual TLS with --%s, --%s and --%s",
		FlagInsecureLoopback, addrFlag, addr, FlagCertFile, FlagKeyFile, FlagClientCAFile)
}

// ServerCredentials returns the gRPC server credentials of c: mutual TLS with certificates read
// now (an error if they do not load) and re-read when their files change, or plaintext with
// --grpc-insecure-loopback. onReload hears of each reload (err nil) or refused reload; may be
// nil.
func (c Config) ServerCredentials(onReload func(error)) (credentials.TransportCredentials, error) {
	if c.InsecureLoopback {
		return insecure.NewCredentials(), nil
	}
	files := tlsfiles.Files{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.ClientCAFile,
		CertFlag: FlagCertFile, KeyFlag: FlagKeyFile, ClientCAFlag: FlagClientCAFile}
	s, err := tlsfiles.NewServer(files, func(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			// The point of it all: no certificate from the CA, no connection.
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  clientCAs,
			NextProtos: []string{"h2"},
		}
	}, onReload)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(s.Config()), nil
}

// ClientConfig is the client side of these ports, as Envoy's bootstrap sets it up: it verifies
// the server's certificate with the CA in caFile for serverName, and presents the certificate
// in certFile and keyFile (none if both are empty). For tests and tools that speak to xds or
// extauthz as Envoy does.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: serverName}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
