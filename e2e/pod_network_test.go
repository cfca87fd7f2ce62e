package e2e

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/localdev"
)

// The attack: anyone on the pod network calls keystore's management API directly, claiming to
// be an admin in the front-proxy headers. keystore believes those headers only from the edge's
// client certificate, so a stranger without it, or with a certificate of the same name from
// another CA, is not an admin; the edge's own certificate is.
func TestKeystoreTrustsOnlyTheEdge(t *testing.T) {
	t.Parallel()
	edgeCert, err := tls.LoadX509KeyPair(filepath.Join(platform.PKIDir(), "edge-client.crt"), filepath.Join(platform.PKIDir(), "edge-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("an attacker's CA")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := otherCA.Client("keygate-edge")
	if err != nil {
		t.Fatal(err)
	}
	forgedCert, err := forged.TLS()
	if err != nil {
		t.Fatal(err)
	}
	ask := func(certs []tls.Certificate) (int, string) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			// The attacker does not care who the server is; the server must care who they are.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs},
		}}
		req, err := http.NewRequest(http.MethodGet, "https://"+platform.KeystoreAPIAddress()+"/apis/management.loft.sh/v1/ownedaccesskeys", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Remote-User", localdev.AdminUser)
		req.Header.Set("X-Remote-Group", localdev.AdminGroup)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error() // a refused handshake is a refusal too
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	for name, certs := range map[string][]tls.Certificate{
		"no client certificate":           nil,
		"the edge's name from another CA": {forgedCert},
	} {
		if code, body := ask(certs); code == http.StatusOK {
			t.Errorf("%s, claiming admin: HTTP 200, want a refusal: %s", name, body)
		}
	}
	if code, body := ask([]tls.Certificate{edgeCert}); code != http.StatusOK {
		t.Errorf("the edge's own certificate: HTTP %d, want 200 (the test must be able to fail): %s", code, body)
	}
}
