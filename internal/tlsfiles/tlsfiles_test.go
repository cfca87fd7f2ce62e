package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/pki"
)

// NewServer refuses files that do not load, naming the flag, and hands Build the client CAs
// only when a CA file is configured.
func TestNewServer(t *testing.T) {
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Server("server", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := pair.Write(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	flags := Files{CertFlag: "cert", KeyFlag: "key", ClientCAFlag: "ca"}
	with := func(cert, key, ca string) Files {
		f := flags
		f.CertFile, f.KeyFile, f.ClientCAFile = cert, key, ca
		return f
	}

	for name, tc := range map[string]struct {
		files   Files
		wantCAs bool
		wantErr string
	}{
		"certificate and key":              {files: with(certFile, keyFile, "")},
		"with a client CA":                 {files: with(certFile, keyFile, caFile), wantCAs: true},
		"no certificate file":              {files: with(filepath.Join(dir, "none"), keyFile, ""), wantErr: "--cert: open"},
		"the key is not the certificate's": {files: with(certFile, certFile, ""), wantErr: "not a matching PEM certificate and key"},
		"the CA file holds no certificate": {files: with(certFile, keyFile, keyFile), wantErr: "--ca " + keyFile + ": no PEM certificate in it"},
	} {
		t.Run(name, func(t *testing.T) {
			var gotCAs *x509.CertPool
			s, err := NewServer(tc.files, func(cert tls.Certificate, cas *x509.CertPool) *tls.Config {
				gotCAs = cas
				return &tls.Config{Certificates: []tls.Certificate{cert}}
			}, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewServer: %v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), string(pair.KeyPEM)) {
					t.Error("the error quotes the private key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (gotCAs != nil) != tc.wantCAs {
				t.Errorf("Build got client CAs %v, want them: %v", gotCAs != nil, tc.wantCAs)
			}
			cfg, err := s.Config().GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil || len(cfg.Certificates) != 1 {
				t.Errorf("the configuration served: %v, %v; want the certificate", cfg, err)
			}
		})
	}
}
