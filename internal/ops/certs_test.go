package ops

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/internal/pki"
)

// TestCertExpiry: the gauge shows the notAfter of the file as it is at each scrape, so a rotated
// certificate clears an expiry alert without a restart; a file that went missing says so.
func TestCertExpiry(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serving.crt")
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := CertExpiry(reg, map[string]string{"tls-cert-file": file, "unset-file": ""}); err != nil {
		t.Fatal(err)
	}
	expiry := func() float64 { return gauge(t, reg, "keygate_certificate_expiry_timestamp_seconds") }
	if got, want := expiry(), float64(ca.Cert.NotAfter.Unix()); got != want {
		t.Errorf("expiry = %v, want the CA's notAfter %v (and no series for an unset file)", got, want)
	}

	leaf, err := ca.Server("rotated", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(leaf.CertPEM)
	rotated, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := expiry(), float64(rotated.NotAfter.Unix()); got != want {
		t.Errorf("after rotation: expiry = %v, want the new certificate's %v", got, want)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "keygate_certificate_read_errors"); got != 1 {
		t.Errorf("read errors = %v for a missing file, want 1", got)
	}
	if got := gauge(t, reg, "keygate_certificate_expiry_timestamp_seconds"); got != -1 {
		t.Errorf("expiry = %v for a missing file, want no series", got)
	}
}

// gauge is the value of the one series of family name in reg (promlint-checked), -1 if none.
func gauge(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	for _, mf := range metricstest.Lint(t, reg) {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s: %d series, want 1 (none for an unset file)", name, len(mf.GetMetric()))
		}
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	return -1
}
