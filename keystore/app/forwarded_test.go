package app

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keygate-dev/keygate/internal/pki"
)

// The login endpoints see X-Forwarded-For only from a connection with the edge's client
// certificate; from anyone else it is gone (their limits key on the connection's address) and
// counted.
func TestForwardedForOnlyFromTheEdge(t *testing.T) {
	ca, err := pki.NewCA("requestheader CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("an attacker's CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert := func(ca *pki.CA, cn string) []tls.Certificate {
		p, err := ca.Client(cn)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.TLS()
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	certFile, keyFile, _ := servingFiles(t, ca, t.TempDir())

	reg := prometheus.NewRegistry()
	h, err := newEdgeForwarded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values("X-Forwarded-For"), ";"))
	}), []string{"keygate-edge"}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	https, err := httpsServer(Config{CertFile: certFile, KeyFile: keyFile}, slog.New(slog.DiscardHandler), "login endpoints", "127.0.0.1:0", h, caFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = https.TLSConfig
	srv.StartTLS()
	defer srv.Close()

	for name, tc := range map[string]struct {
		certs       []tls.Certificate
		want        string // the header the handler sees
		wantRefused bool   // the handshake fails
	}{
		"the edge's certificate: believed":              {certs: cert(ca, "keygate-edge"), want: "198.51.100.7, 10.0.0.1"},
		"no certificate: dropped":                       {want: ""},
		"the CA's certificate of another name: dropped": {certs: cert(ca, "someone-else"), want: ""},
		"the edge's name from another CA: refused":      {certs: cert(other, "keygate-edge"), wantRefused: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &tls.Config{InsecureSkipVerify: true}
			if tc.certs != nil {
				// Sent whatever CAs the server names, as an attacker would: Go's client would
				// otherwise keep back a certificate of a CA the server does not accept.
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.certs[0], nil }
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/password/login", nil)
			req.Header.Set("X-Forwarded-For", "198.51.100.7, 10.0.0.1")
			resp, err := c.Do(req)
			if tc.wantRefused {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("HTTP %d, want the handshake refused", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tc.want {
				t.Errorf("the handler saw X-Forwarded-For %q, want %q", body, tc.want)
			}
		})
	}
	if got := testutil.ToFloat64(h.ignored); got != 2 {
		t.Errorf("keygate_keystore_auth_forwarded_for_ignored_total = %v, want 2 (no certificate, another name)", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// An unreadable or empty CA file is a start-up error that names the flag.
func TestHTTPSServerBadCAFile(t *testing.T) {
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, _ := servingFiles(t, ca, dir)
	empty := filepath.Join(dir, "empty.crt")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ file, want string }{
		"missing":        {filepath.Join(dir, "none.crt"), "--requestheader-client-ca-file: open"},
		"no certificate": {empty, "no PEM certificate in it"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := httpsServer(Config{CertFile: certFile, KeyFile: keyFile}, slog.New(slog.DiscardHandler), "login endpoints", "127.0.0.1:0", http.NotFoundHandler(), tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// keystore's HTTPS endpoints (login, OIDC) serve a rotated certificate at the next connection,
// without a restart, and keep the last good one while the files are half-written.
func TestHTTPSServerReloadsItsCertificate(t *testing.T) {
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, first := servingFiles(t, ca, dir)
	https, err := httpsServer(Config{CertFile: certFile, KeyFile: keyFile}, slog.New(slog.DiscardHandler), "OIDC provider", "127.0.0.1:0", http.NotFoundHandler(), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = https.TLSConfig
	srv.StartTLS()
	defer srv.Close()
	served := func() []byte {
		conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	der := func(p pki.Pair) []byte {
		c, err := p.TLS()
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}

	if !bytes.Equal(served(), der(first)) {
		t.Fatal("the first connection does not get the certificate on disk")
	}
	_, _, second := servingFiles(t, ca, dir)
	if !bytes.Equal(served(), der(second)) {
		t.Error("after the files were rotated: the old certificate, want the new one without a restart")
	}
	if err := os.WriteFile(keyFile, []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), der(second)) {
		t.Error("with a broken key file: want the last good certificate still served")
	}
}

// servingFiles issues keystore a serving certificate for 127.0.0.1 from ca and writes it to
// dir/serving.crt and dir/serving.key (over what was there: a rotation).
func servingFiles(t *testing.T, ca *pki.CA, dir string) (certFile, keyFile string, p pki.Pair) {
	t.Helper()
	p, err := ca.Server("keystore", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err = p.Write(dir, "serving")
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, p
}
