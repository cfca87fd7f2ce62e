package loginpage_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	rdb   *redis.Client
	keys  *store.Store
	userS *users.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/auth/loginpage", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
		// The lowest bcrypt cost keeps the tests fast; Authenticate is the same code at any cost.
		userS = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	})
}

const password = "correct horse battery staple"

var n atomic.Int64

func unique(p string) string { return fmt.Sprintf("%s-%d-%d", p, time.Now().UnixNano()%1e6, n.Add(1)) }

func newUser(t *testing.T) string {
	t.Helper()
	name := unique("alice")
	if err := userS.Create(context.Background(), users.User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	return name
}

// requests is a fake OIDC provider: the unit under test is the page, not the provider.
type requests struct {
	mu        sync.Mutex
	pending   map[string]session.Pending
	completed map[string]string // id → user
	redirect  string            // base of the redirect Complete answers
}

func newRequests(redirect string) *requests {
	return &requests{pending: map[string]session.Pending{}, completed: map[string]string{}, redirect: redirect}
}

// add makes a pending request for clientName and returns its ID.
func (q *requests) add(clientName string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := unique("req")
	q.pending[id] = session.Pending{ClientName: clientName, ClientID: "argocd"}
	return id
}

func (q *requests) Describe(_ context.Context, id string) (session.Pending, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.pending[id]
	if !ok {
		return p, session.ErrUnknownRequest
	}
	return p, nil
}

func (q *requests) Complete(_ context.Context, id string, s *session.Session) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.pending[id]; !ok {
		return "", session.ErrUnknownRequest
	}
	delete(q.pending, id)
	q.completed[id] = s.User
	return q.redirect + "?" + url.Values{"code": {"code-" + id}, "state": {"s"}}.Encode(), nil
}

func (q *requests) completedBy(id string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.completed[id]
}

type fixture struct {
	h    http.Handler
	reqs *requests
}

func newFixture(t *testing.T, edit func(*auth.Options, *loginpage.Options)) *fixture {
	t.Helper()
	f := &fixture{reqs: newRequests("https://argocd.example/auth/callback")}
	ao := auth.Options{Keys: keys, Users: userS, Limits: auth.LimitStore{Redis: rdb, Prefix: "keygate:{" + unique("loginlimits") + "}:"}}
	po := loginpage.Options{
		Sessions:   &session.Reader{Keys: keys, Users: userS},
		Requests:   f.reqs,
		Connectors: func() []loginpage.Connector { return []loginpage.Connector{{ID: "okta", DisplayName: "Okta"}} },
	}
	if edit != nil {
		edit(&ao, &po)
	}
	a, err := auth.New(ao)
	if err != nil {
		t.Fatal(err)
	}
	po.Auth = a
	h, err := loginpage.New(po)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

// browser is one browser's cookies, as a cookie jar would keep them for the edge.
type browser struct {
	f       *fixture
	cookies map[string]*http.Cookie
}

func (f *fixture) browser() *browser { return &browser{f: f, cookies: map[string]*http.Cookie{}} }

func (b *browser) do(r *http.Request) *httptest.ResponseRecorder {
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	b.f.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return w
}

func (b *browser) get(target string) *httptest.ResponseRecorder {
	return b.do(httptest.NewRequest(http.MethodGet, "https://edge.example"+target, nil))
}

// post sends a form as a browser does from a page of the edge.
func (b *browser) post(path string, form url.Values, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "https://edge.example"+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Origin", "https://edge.example")
	r.Header.Set("X-Forwarded-For", "192.0.2.10")
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return b.do(r)
}

var tokenRE = regexp.MustCompile(`name="csrfToken" value="([^"]+)"`)

// token is the CSRF token of a rendered form.
func token(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no csrfToken in the page:\n%s", w.Body)
	}
	return m[1]
}

// signIn opens the form for id and posts user's password; it returns the answer to the post.
func (b *browser) signIn(t *testing.T, id, user, pw string) *httptest.ResponseRecorder {
	t.Helper()
	target := "/login"
	if id != "" {
		target += "?authRequestID=" + url.QueryEscape(id)
	}
	page := b.get(target)
	form := url.Values{"username": {user}, "password": {pw}, "csrfToken": {token(t, page)}}
	if id != "" {
		form.Set("authRequestID", id)
	}
	return b.post("/login", form, nil)
}

// sessionCookie is the session cookie the answer set, or nil.
func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == session.CookieName && c.MaxAge >= 0 {
			return c
		}
	}
	return nil
}
