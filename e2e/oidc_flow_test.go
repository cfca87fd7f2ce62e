package e2e

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/keystore/users"
	"github.com/keygate-dev/keygate/localdev"
)

// The browser's part of the authorization code flow, done over HTTP through the real Envoy as
// a browser does it: cookies, the login page's form and CSRF token, same-origin headers on the
// post, and the redirects. Nothing of the provider is called directly.

// oidcPassword is the password of the store users these tests sign in.
const oidcPassword = "correct horse battery"

// demoRedirect is the demo client's redirect URI; nothing listens there: the browser stops at
// it and the test reads the code from the URL, as the relying party would.
const demoRedirect = "http://127.0.0.1:8000/callback"

// demoRP is the demo client (public: PKCE) as a golang.org/x/oauth2 relying party sees it.
func demoRP() *oauth2.Config {
	return &oauth2.Config{ClientID: localdev.DemoOIDCClient, RedirectURL: demoRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: platform.EdgeURL + "/oidc/authorize", TokenURL: platform.EdgeURL + "/oidc/oauth/token"},
		Scopes:   []string{"openid", "profile", "email", "groups", "offline_access"}}
}

// newStoreUser creates a user of the store with oidcPassword.
func newStoreUser(t *testing.T, ctx context.Context, name string, groups []string) *users.Store {
	t.Helper()
	people := newUsersStore(t)
	if err := people.Create(ctx, users.User{Name: name, Groups: groups, Email: name + "@example.com"}, oidcPassword); err != nil {
		t.Fatal(err)
	}
	return people
}

// newBrowser is a cookie-keeping client trusting the edge that follows redirects like a
// browser, but stops at the relying party's redirect URI.
func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := *client
	b.Jar = jar
	b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), demoRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &b
}

// page is a response read whole.
type page struct {
	resp *http.Response
	body string
}

func browse(t *testing.T, b *http.Client, req *http.Request) page {
	t.Helper()
	resp, err := b.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{resp, string(body)}
}

func browseGet(t *testing.T, b *http.Client, u string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return browse(t, b, req)
}

// authorization is one run of the flow: the verifier and state the relying party keeps.
type authorization struct {
	cfg             *oauth2.Config
	verifier, state string
}

// startAuthorization sends the browser to the edge's /oidc/authorize and follows where it
// leads: the login page, or (with a session) back to the relying party.
func startAuthorization(t *testing.T, b *http.Client, cfg *oauth2.Config) (*authorization, page) {
	t.Helper()
	a := &authorization{cfg: cfg, verifier: oauth2.GenerateVerifier(), state: randomHex(t, 8)}
	return a, browseGet(t, b, cfg.AuthCodeURL(a.state, oauth2.S256ChallengeOption(a.verifier), oauth2.SetAuthURLParam("nonce", randomHex(t, 8))))
}

var (
	csrfField      = regexp.MustCompile(`name="csrfToken" value="([^"]+)"`)
	requestField   = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)
	continueLink   = regexp.MustCompile(`<a id="continue" href="([^"]+)"`)
	errorParagraph = regexp.MustCompile(`<p class="error" id="error" role="alert">([^<]*)</p>`)
)

// postLogin posts the login page's form as the browser would after the user typed: the CSRF
// token and request ID from the page, and the headers that tell CrossOriginProtection the
// post comes from the page's own origin.
func postLogin(t *testing.T, b *http.Client, form page, user, password string) page {
	t.Helper()
	token, id := csrfField.FindStringSubmatch(form.body), requestField.FindStringSubmatch(form.body)
	if token == nil || id == nil {
		t.Fatalf("no sign-in form with a request at %s (%s):\n%s", form.resp.Request.URL, form.resp.Status, form.body)
	}
	v := url.Values{"csrfToken": {html.UnescapeString(token[1])}, "authRequestID": {html.UnescapeString(id[1])},
		"username": {user}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, platform.EdgeURL+"/auth/login", strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", platform.EdgeURL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return browse(t, b, req)
}

// followContinue follows the "Signed in" page's link (a browser follows its meta refresh) to
// the provider's callback and on to the relying party.
func followContinue(t *testing.T, b *http.Client, signedIn page) page {
	t.Helper()
	m := continueLink.FindStringSubmatch(signedIn.body)
	if signedIn.resp.StatusCode != http.StatusOK || m == nil || !strings.Contains(signedIn.body, `http-equiv="refresh"`) {
		t.Fatalf("sign-in: %s, want the page moving on to the application:\n%s", signedIn.resp.Status, signedIn.body)
	}
	next, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if next.Path != "/oidc/authorize/callback" {
		t.Errorf("the page continues to %s, want the provider's callback", next)
	}
	return browseGet(t, b, platform.EdgeURL+next.RequestURI())
}

// exchange checks the browser is back at the relying party with a code and the state, and
// trades the code (with the PKCE verifier) for tokens through the edge.
func (a *authorization) exchange(t *testing.T, ctx context.Context, back page) *oauth2.Token {
	t.Helper()
	loc, err := url.Parse(back.resp.Header.Get("Location"))
	if back.resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), a.cfg.RedirectURL) {
		t.Fatalf("%s at %s: %s, Location %q; want the relying party's redirect URI\n%s", back.resp.Request.Method, back.resp.Request.URL, back.resp.Status, back.resp.Header.Get("Location"), back.body)
	}
	if loc.Query().Get("state") != a.state || loc.Query().Get("code") == "" {
		t.Fatalf("back at the relying party with %s: want the state and a code", loc)
	}
	tok, err := a.cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, client), loc.Query().Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("code exchange through the edge: %v", err)
	}
	return tok
}

// oidcLogin creates store user name and signs them in to the demo client through the edge's
// login page; it returns the tokens and the browser (holding the session cookie).
func oidcLogin(t *testing.T, ctx context.Context, name string, groups []string) (*oauth2.Token, *http.Client) {
	t.Helper()
	newStoreUser(t, ctx, name, groups)
	b := newBrowser(t)
	a, form := startAuthorization(t, b, demoRP())
	if u := form.resp.Request.URL; u.Path != "/auth/login" || u.Query().Get("authRequestID") == "" {
		t.Fatalf("authorize led the browser to %s, want the login page with the request", u)
	}
	return a.exchange(t, ctx, followContinue(t, b, postLogin(t, b, form, name, oidcPassword))), b
}
