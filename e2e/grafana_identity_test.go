package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// grafanaAttack is what a key holder would send to make Grafana's auth proxy take them for
// someone else: every header Grafana's documentation names for it, in several letter cases,
// twice where it can, and with underscores for a server that reads those as dashes. Every value
// carries marker, so that any of them reaching Grafana shows.
func grafanaAttack(marker string) [][2]string {
	var hs [][2]string
	for _, name := range []string{
		"X-WEBAUTH-USER", "x-webauth-user", "X-WebAuth-Role", "x-webauth-ROLE", "X-WEBAUTH-EMAIL",
		"X-Webauth-Name", "x-webauth-login", "X-WEBAUTH-GROUPS", "x-WebAuth-Groups", "X_WEBAUTH_ROLE",
	} {
		hs = append(hs, [2]string{name, "Admin-" + marker})
	}
	return hs
}

// TestGrafanaAuthProxyHeadersAreTheEdges: through the real Envoy, over HTTP/1.1 (header names
// as the client wrote them) and HTTP/2, the Grafana stand-in sees the key's user and groups in
// the auth-proxy headers the edge owns, never one value the client sent, and none of the role,
// email, name or login headers at all.
func TestGrafanaAuthProxyHeadersAreTheEdges(t *testing.T) {
	t.Parallel()
	user := unique("grafana-user")
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: user, Groups: []string{"viewers"}})
	marker := unique("attacker")
	wantGroups := []string{"loft:user:" + user, "system:authenticated", "viewers"}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			seen := grafanaRequest(t, proto, key, grafanaAttack(marker))
			if seen.User != user {
				t.Errorf("%s = %q, want the key's user %q", localdev.GrafanaUserHeader, seen.User, user)
			}
			var groups []string
			if err := json.Unmarshal([]byte(seen.Groups), &groups); err != nil {
				t.Errorf("%s = %q, want a JSON list: %v", localdev.GrafanaGroupsHeader, seen.Groups, err)
			}
			slices.Sort(groups)
			if !slices.Equal(groups, wantGroups) {
				t.Errorf("%s = %v, want the key's groups %v", localdev.GrafanaGroupsHeader, groups, wantGroups)
			}
			for name, values := range seen.Headers {
				n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				if slices.Contains([]string{"x-webauth-role", "x-webauth-email", "x-webauth-name", "x-webauth-login"}, n) {
					t.Errorf("Grafana received %s: %v", name, values)
				}
				for _, v := range values {
					if strings.Contains(v, marker) || strings.Contains(v, key) {
						t.Errorf("Grafana received the client's %s: %q", name, v)
					}
				}
			}
		})
	}
}

// grafanaRequest sends GET /grafana/demo/api/user through the edge with key and headers (names
// as given, over HTTP/1.1; lower-cased by HTTP/2), and returns what the stand-in saw.
func grafanaRequest(t *testing.T, proto, key string, headers [][2]string) localdev.GrafanaRequest {
	t.Helper()
	c := client
	if proto == "HTTP/1.1" {
		tr := client.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		c = &http.Client{Transport: tr}
	}
	req, err := http.NewRequest(http.MethodGet, platform.EdgeURL+"/grafana/demo/api/user", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for _, h := range headers {
		// Not Header.Add: it would canonicalise the name the attacker chose.
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen localdev.GrafanaRequest
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Proto, proto) {
		t.Fatalf("%s: HTTP %d (%v), want 200 over %s from the stand-in", resp.Proto, resp.StatusCode, err, proto)
	}
	return seen
}
