package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/localdev"
)

// Single sign-on through the real Envoy, with the platform's test IdP (internal/testidp, its
// own process) as keystore's connector localdev.SSOConnector.

// TestSSOLoginKeyThroughTheEdge: a browser logs in through /auth/testidp/login at the edge,
// posting the IdP's own form; the Login key it gets (its session cookie) is a bearer key at the
// edge, and a cluster sees the IdP's user and groups by impersonation.
func TestSSOLoginKeyThroughTheEdge(t *testing.T) {
	t.Parallel()
	name := "alice"
	noErr(t, platform.IdP.SetGroups(localdev.SSOSubject(name), []string{"sso-dev", "sso-ops"}))
	b := ssoBrowser(t)
	done := idpLogin(t, b, browseGet(t, b, platform.EdgeURL+"/auth/"+localdev.SSOConnector+"/login"), name)
	user := localdev.SSOUsernamePrefix + name
	if done.resp.StatusCode != http.StatusOK || !strings.Contains(done.body, "Signed in as "+user) {
		t.Fatalf("SSO login: %s at %s\n%s", done.resp.Status, done.resp.Request.URL, done.body)
	}
	key := sessionKey(t, b)
	out, errOut, err := runKubectl(t, kubeconfig(t, key), staging, "auth", "whoami", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl auth whoami with the SSO login key: %v\n%s", err, errOut)
	}
	var who struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &who); err != nil {
		t.Fatal(err)
	}
	if u := who.Status.UserInfo; u.Username != user || !slices.Contains(u.Groups, "sso-dev") || !slices.Contains(u.Groups, "sso-ops") {
		t.Errorf("the cluster sees %+v, want %s with the IdP's groups sso-dev and sso-ops", u, user)
	}
}

// TestSSOForOIDCThroughTheEdge: the OIDC provider's sign-in through the IdP: authorize, the
// login page's "Log in with Test IdP" link, the IdP's form, back through the edge's callback to
// the relying party with a code; the ID token has the IdP's groups. The IdP then changes the
// user's groups: keystore's refresh pass (--sso-refresh-period 1s here, due after the
// connector's refreshInterval of 30s) takes them up, and the relying party's next refresh
// shows them.
func TestSSOForOIDCThroughTheEdge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "bob"
	noErr(t, platform.IdP.SetGroups(localdev.SSOSubject(name), []string{"sso-dev", "sso-ops"}))
	b := ssoBrowser(t)
	a, form := startAuthorization(t, b, demoRP())
	m := regexp.MustCompile(`<a href="(/auth/` + localdev.SSOConnector + `/login\?authRequestID=[^"]+)">Log in with Test IdP</a>`).FindStringSubmatch(form.body)
	if m == nil {
		t.Fatalf("the login page at %s offers no link to the IdP:\n%s", form.resp.Request.URL, form.body)
	}
	tok := a.exchange(t, ctx, idpLogin(t, b, browseGet(t, b, platform.EdgeURL+html.UnescapeString(m[1])), name))
	_, verify := discover(t, ctx)
	c := verify(t, tok)
	if c.Subject != localdev.SSOUsernamePrefix+name || !slices.Equal(c.Groups, []string{"sso-dev", "sso-ops"}) {
		t.Errorf("ID token %+v, want %s%s with the IdP's groups", c, localdev.SSOUsernamePrefix, name)
	}

	noErr(t, platform.IdP.SetGroups(localdev.SSOSubject(name), []string{"sso-dev"}))
	rt := tok.RefreshToken
	eventually(t, 60*time.Second, "the IdP's new groups in a refreshed ID token", func() error {
		fresh := refresh(t, ctx, rt)
		rt = fresh.RefreshToken
		if g := verify(t, fresh).Groups; !slices.Equal(g, []string{"sso-dev"}) {
			time.Sleep(time.Second) // the refresh pass is due 30 s after the login
			return fmt.Errorf("groups %v", g)
		}
		return nil
	})
}

// ssoBrowser is a browser (cookies) trusting the edge and the IdP.
func ssoBrowser(t *testing.T) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(platform.EdgeCA)
	pem, err := os.ReadFile(platform.IdP.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	b := newBrowser(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	b.Transport = tr
	return b
}

var idpFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// idpLogin posts the IdP's login form (the page the edge sent the browser to) for user, and
// follows where the IdP and the edge send the browser.
func idpLogin(t *testing.T, b *http.Client, form page, user string) page {
	t.Helper()
	m := idpFormID.FindStringSubmatch(form.body)
	if form.resp.StatusCode != http.StatusOK || m == nil || !strings.HasPrefix(form.resp.Request.URL.String(), platform.IdP.Issuer) {
		t.Fatalf("the edge did not lead to the IdP's form: %s at %s\n%s", form.resp.Status, form.resp.Request.URL, form.body)
	}
	v := url.Values{"id": {m[1]}, "username": {user}, "password": {localdev.SSOPassword}}
	req, err := http.NewRequest(http.MethodPost, platform.IdP.Issuer+"/login/username", strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return browse(t, b, req)
}

// sessionKey is the browser's session cookie at the edge: the plain Login key.
func sessionKey(t *testing.T, b *http.Client) string {
	t.Helper()
	u, _ := url.Parse(platform.EdgeURL + session.CookiePath)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == session.CookieName {
			return c.Value
		}
	}
	t.Fatal("no session cookie at the edge")
	return ""
}

// noErr fails t at once on err (the test IdP's admin calls).
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
