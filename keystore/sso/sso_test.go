package sso_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/internal/testidp"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/sso"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	rdb   *redis.Client
	keys  *store.Store
	userS *users.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/sso", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
		userS = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	})
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

// clock is the handler's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// edge is keystore's SSO handler behind a TLS server that, like Envoy, strips /auth, with a real
// IdP process and a browser (a cookie jar) that trusts both.
type edge struct {
	srv     *httptest.Server
	idp     *testidp.IdP
	h       *sso.Handler
	box     *sealed.Box
	clock   *clock
	reg     *prometheus.Registry
	browser *http.Client
	// connector is the connector's configuration; tests change it before newEdge's handler.
	connector config.Connector
}

// newEdge starts an edge with connector "idp" and the IdP users given; tweak changes the
// connector's configuration.
func newEdge(t *testing.T, people []testidp.User, tweak func(*config.OIDCConnector)) *edge {
	t.Helper()
	e := &edge{clock: &clock{t: time.Now()}, reg: prometheus.NewRegistry()}
	var handler http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.StripPrefix("/auth", handler).ServeHTTP(w, r)
	}))
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.idp = startIdP(t, testidp.Options{ClientID: "keygate", RedirectURIs: []string{e.srv.URL + "/auth/idp/callback"}, Users: people})
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(e.idp.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &config.OIDCConnector{IssuerURL: e.idp.Issuer, ClientID: "keygate", ClientSecretFile: secretFile, CAFile: e.idp.CAFile, RefreshInterval: "1m"}
	if tweak != nil {
		tweak(o)
	}
	e.connector = config.Connector{ID: "idp", OIDC: o}
	cfg := &config.Config{Auth: config.Auth{Connectors: []config.Connector{e.connector}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.box, err = sealed.Parse(sealed.Generate()); err != nil {
		t.Fatal(err)
	}
	e.h, err = sso.New(sso.Options{
		Keys: keys, Users: sso.StoreUsers(userS), Redis: rdb, Box: e.box, ExternalURL: e.srv.URL,
		AdminGroup: "keygate:admins", Registerer: e.reg, Now: e.clock.Now,
		StartLimitPrefix: "keygate:{" + unique("loginlimits") + "}:", // each edge counts its own starts
	}, cfg.Auth.Connectors)
	if err != nil {
		t.Fatal(err)
	}
	handler = e.h
	e.browser = e.newBrowser(t)
	return e
}

// newBrowser is a browser of its own (cookies), trusting the edge and the IdP.
func (e *edge) newBrowser(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	pem, err := os.ReadFile(e.idp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 20 * time.Second}
}

var formID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// toIdPLogin starts a login at the edge and follows it to the IdP's login form; it returns the
// form's auth request id.
func (e *edge) toIdPLogin(t *testing.T, b *http.Client) string {
	t.Helper()
	resp, body := get(t, b, e.srv.URL+"/auth/idp/login")
	m := formID.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("login did not reach the IdP's form: %s %s\n%s", resp.Status, resp.Request.URL, body)
	}
	return m[1]
}

// postIdPLogin posts the IdP's login form and follows the redirects as far as stop allows
// (nil: to the end). It returns the last response.
func (e *edge) postIdPLogin(t *testing.T, b *http.Client, id, user, password string) (*http.Response, string) {
	t.Helper()
	resp, err := b.PostForm(e.idp.Issuer+"/login/username", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn is a whole browser login of user at the IdP.
func (e *edge) signIn(t *testing.T, b *http.Client, user, password string) (*http.Response, string) {
	t.Helper()
	return e.postIdPLogin(t, b, e.toIdPLogin(t, b), user, password)
}

func get(t *testing.T, b *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// keysOf are the stored keys of user.
func keysOf(t *testing.T, user string) []*v1.OwnedAccessKey {
	t.Helper()
	all, err := keys.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1.OwnedAccessKey
	for _, k := range all {
		if k.Spec.User == user {
			out = append(out, k)
		}
	}
	return out
}

func oneKey(t *testing.T, user string) *v1.OwnedAccessKey {
	t.Helper()
	ks := keysOf(t, user)
	if len(ks) != 1 {
		t.Fatalf("user %s has %d keys, want 1", user, len(ks))
	}
	return ks[0]
}

func sessionCookie(e *edge, b *http.Client) string {
	u, _ := url.Parse(e.srv.URL + "/auth/")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == session.CookieName {
			return c.Value
		}
	}
	return ""
}

func user(name string) testidp.User {
	return testidp.User{ID: "sub-" + name, Username: name, Password: "idp-password", Email: name + "@example.com", EmailVerified: true}
}

var uniqueN atomic.Int64

// unique gives a name no other test, run (-count) or earlier run against the same Redis uses.
func unique(name string) string { return fmt.Sprintf("%s-%s-%d", name, runID, uniqueN.Add(1)) }

type testidpUser = testidp.User

func wantCounter(t *testing.T, mfs []*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					match = false
				}
			}
			if match {
				if got := m.GetCounter().GetValue(); got != want {
					t.Errorf("%s%v = %v, want %v", name, labels, got, want)
				}
				return
			}
		}
	}
	t.Errorf("%s%v not found", name, labels)
}

// startIdP builds and starts the test IdP in its own temporary folder; t's cleanup stops it.
func startIdP(t testing.TB, opts testidp.Options) *testidp.IdP {
	t.Helper()
	opts.Dir = t.TempDir()
	idp, err := testidp.Launch(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Stop)
	return idp
}

// noErr fails t at once on err (the test IdP's admin calls).
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
