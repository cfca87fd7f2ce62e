package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	tests := map[string]struct {
		issue func() (Pair, error)
		opts  x509.VerifyOptions
	}{
		"server for an IP": {
			issue: func() (Pair, error) { return ca.Server("edge", "127.0.0.1", "localhost") },
			opts:  x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"},
		},
		"server for a name": {
			issue: func() (Pair, error) { return ca.Server("edge", "127.0.0.1", "localhost") },
			opts:  x509.VerifyOptions{Roots: pool, DNSName: "localhost"},
		},
		"client": {
			issue: func() (Pair, error) { return ca.Client("keygate-edge", "keygate:edges") },
			opts:  x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := tc.issue()
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
			if err != nil {
				t.Fatalf("certificate and key do not match: %v", err)
			}
			if _, err := pair.Leaf.Verify(tc.opts); err != nil {
				t.Errorf("does not verify: %v", err)
			}
		})
	}

	other, _ := NewCA("other CA")
	p, _ := other.Client("x")
	pair, _ := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("a certificate from another CA must not verify")
	}
}
