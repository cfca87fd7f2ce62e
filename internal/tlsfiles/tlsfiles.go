// Package tlsfiles serves TLS from certificate files that are read again when they change, so
// that a rotated certificate (cert-manager renewing a Secret, an operator replacing a file)
// takes effect without a restart: xds's and extauthz's gRPC ports (internal/grpctls) and
// keystore's HTTPS endpoints.
//
// The files are read at each TLS handshake. The edge's Envoy keeps its connections for hours, so
// handshakes are rare and reading three small files each time costs nothing; comparing contents
// (not modification times) catches every rewrite, Kubernetes' Secret volume swaps included. A
// change that does not load (a key written before its certificate, say) is refused and the last
// good files stay in use.
package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// Files names a server's certificate, its key and, optionally, the CA bundle that signs its
// clients' certificates, with the flags that set them (for the errors).
type Files struct {
	CertFile, KeyFile, ClientCAFile string
	CertFlag, KeyFlag, ClientCAFlag string
}

// Build makes a server configuration of a loaded certificate and the client CAs (nil without a
// ClientCAFile): it decides the client authentication and the protocols.
type Build func(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config

// Server holds a server's last good configuration and reloads it when its files change.
type Server struct {
	files    Files
	build    Build
	onReload func(error)

	mu      sync.Mutex
	current *tls.Config // the last good configuration
	seen    [3][]byte   // the contents last read, good or not
	lastErr string      // the last refusal reported, so that each is reported once
}

// NewServer reads files now (an error if they do not load) and returns their server. onReload
// hears of each reload (err nil) or refused reload; may be nil.
func NewServer(files Files, build Build, onReload func(error)) (*Server, error) {
	if onReload == nil {
		onReload = func(error) {}
	}
	s := &Server{files: files, build: build, onReload: onReload}
	raw, err := s.read()
	if err != nil {
		return nil, err
	}
	if s.current, err = s.load(raw); err != nil {
		return nil, err
	}
	s.seen = raw
	return s, nil
}

// Config is the tls.Config to serve with: every handshake gets the current files.
func (s *Server) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: s.forClient}
}

func (s *Server) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := s.read()
	if err == nil && same(raw, s.seen) {
		return s.current, nil
	}
	var cfg *tls.Config
	if err == nil {
		s.seen = raw
		cfg, err = s.load(raw)
	}
	if err != nil {
		if err.Error() != s.lastErr {
			s.lastErr = err.Error()
			s.onReload(err)
		}
		return s.current, nil
	}
	s.current, s.lastErr = cfg, ""
	s.onReload(nil)
	return s.current, nil
}

// read returns the contents of the certificate, key and CA files (no CA: nil).
func (s *Server) read() ([3][]byte, error) {
	var raw [3][]byte
	for i, f := range []struct{ flag, path string }{{s.files.CertFlag, s.files.CertFile}, {s.files.KeyFlag, s.files.KeyFile}, {s.files.ClientCAFlag, s.files.ClientCAFile}} {
		if f.path == "" && i == 2 {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return raw, fmt.Errorf("--%s: %w", f.flag, err)
		}
		raw[i] = b
	}
	return raw, nil
}

// load makes the server configuration of the files' contents. Its errors never quote the key.
func (s *Server) load(raw [3][]byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("--%s %s and --%s %s: not a matching PEM certificate and key: %w",
			s.files.CertFlag, s.files.CertFile, s.files.KeyFlag, s.files.KeyFile, err)
	}
	var pool *x509.CertPool
	if s.files.ClientCAFile != "" {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(raw[2]) {
			return nil, fmt.Errorf("--%s %s: no PEM certificate in it", s.files.ClientCAFlag, s.files.ClientCAFile)
		}
	}
	return s.build(cert, pool), nil
}

func same(a, b [3][]byte) bool {
	return bytes.Equal(a[0], b[0]) && bytes.Equal(a[1], b[1]) && bytes.Equal(a[2], b[2])
}

// LogReloads is an onReload that logs each reload, and each refusal, of server's files.
func LogReloads(log *slog.Logger, server string) func(error) {
	return func(err error) {
		if err != nil {
			log.Error("TLS files refused; the last good certificates stay in use", "server", server, "error", err)
			return
		}
		log.Info("TLS files reloaded", "server", server)
	}
}
