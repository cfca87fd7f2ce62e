package user

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// managementPath is the management API's group version at the edge.
const managementPath = "/kubernetes/management/apis/management.loft.sh/v1/"

// edge is an HTTP client of one edge.
type edge struct {
	server string
	key    string
	http   *http.Client
}

func newEdge(l *Login) (*edge, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: l.InsecureSkipTLSVerify} //nolint:gosec // only when the user asks
	if len(l.CertificateAuthorityData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(l.CertificateAuthorityData) {
			return nil, errors.New("--certificate-authority: no PEM certificate in it")
		}
		cfg.RootCAs = pool
	}
	return &edge{server: strings.TrimSuffix(l.Server, "/"), key: l.AccessKey, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true},
	}}, nil
}

// statusError is a refusal of the edge, with the Kubernetes Status it sent when it sent one.
type statusError struct {
	code    int
	message string
	said    string // the edge's own message, without advice added here
}

func (e *statusError) Error() string { return e.message }

// do sends a request with the key (if any) and decodes a 2xx JSON answer into out.
func (e *edge) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.key != "" {
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", e.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return refusal(e.server, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// refusal turns an error answer into what the user should read: the Status's message, and for
// a key that no longer works, what to do. The edge answers 401 alike for a key deleted,
// disabled or expired there (it does not tell which, so as not to help a thief), so the advice
// names all three.
func refusal(server string, code int, data []byte) error {
	var st metav1.Status
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	said := msg
	if code == http.StatusUnauthorized {
		msg = fmt.Sprintf("%s: the edge refused the saved key (deleted, disabled or expired there): run `keygate login %s` again", msg, server)
	}
	return &statusError{code: code, message: msg, said: said}
}
