package grpctls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
)

// reloader holds the server's certificate and client CA and re-reads their files at each TLS
// handshake. Envoy keeps its gRPC connections for hours, so handshakes are rare and reading
// three small files each time costs nothing; comparing contents (not modification times)
// catches every rewrite, Kubernetes' Secret volume swaps included. A change that does not load
// (a key written before its certificate, say) is refused and the last good files stay in use.
type reloader struct {
	files    Config
	onReload func(error)

	mu      sync.Mutex
	current *tls.Config // the last good configuration
	seen    [3][]byte   // the contents last read, good or not
	lastErr string      // the last refusal reported, so that each is reported once
}

func newReloader(c Config, onReload func(error)) (*reloader, error) {
	if onReload == nil {
		onReload = func(error) {}
	}
	r := &reloader{files: c, onReload: onReload}
	raw, err := r.read()
	if err != nil {
		return nil, err
	}
	if r.current, err = r.build(raw); err != nil {
		return nil, err
	}
	r.seen = raw
	return r, nil
}

// serverConfig is the tls.Config to serve with: every handshake gets the current files.
func (r *reloader) serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: r.forClient}
}

func (r *reloader) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw, err := r.read()
	if err == nil && same(raw, r.seen) {
		return r.current, nil
	}
	var cfg *tls.Config
	if err == nil {
		r.seen = raw
		cfg, err = r.build(raw)
	}
	if err != nil {
		if err.Error() != r.lastErr {
			r.lastErr = err.Error()
			r.onReload(err)
		}
		return r.current, nil
	}
	r.current, r.lastErr = cfg, ""
	r.onReload(nil)
	return r.current, nil
}

// read returns the contents of the certificate, key and CA files.
func (r *reloader) read() ([3][]byte, error) {
	var raw [3][]byte
	for i, f := range []struct{ flag, path string }{{FlagCertFile, r.files.CertFile}, {FlagKeyFile, r.files.KeyFile}, {FlagClientCAFile, r.files.ClientCAFile}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return raw, fmt.Errorf("--%s: %w", f.flag, err)
		}
		raw[i] = b
	}
	return raw, nil
}

// build makes the server configuration of the files' contents. Its errors never quote the key.
func (r *reloader) build(raw [3][]byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("--%s %s and --%s %s: not a matching PEM certificate and key: %w",
			FlagCertFile, r.files.CertFile, FlagKeyFile, r.files.KeyFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw[2]) {
		return nil, fmt.Errorf("--%s %s: no PEM certificate in it", FlagClientCAFile, r.files.ClientCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// The point of it all: no certificate from the CA, no connection.
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		NextProtos: []string{"h2"},
	}, nil
}

func same(a, b [3][]byte) bool {
	return bytes.Equal(a[0], b[0]) && bytes.Equal(a[1], b[1]) && bytes.Equal(a[2], b[2])
}
