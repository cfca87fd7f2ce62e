package loginpage_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Every page carries these, whatever it says.
var pageHeaders = map[string]string{
	"X-Frame-Options": "DENY",
	"Cache-Control":   "no-store",
	"Referrer-Policy": "no-referrer",
}

func checkHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for k, v := range pageHeaders {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'sha256-", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
}

func TestPageRenders(t *testing.T) {
	f := newFixture(t, nil)
	id := f.reqs.add("Argo CD")
	w := f.browser().get("/login?authRequestID=" + id)
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("GET = %d:\n%s", w.Code, body)
	}
	checkHeaders(t, w.Header())
	for _, want := range []string{
		"Sign in to Argo CD", `action="/auth/login"`, `name="username"`, `type="password"`,
		`name="authRequestID" value="` + id + `"`,
		`href="/auth/okta/login?authRequestID=` + id + `">Log in with Okta</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script") {
		t.Errorf("page has a script:\n%s", body)
	}
}

func TestClientNameIsEscaped(t *testing.T) {
	f := newFixture(t, func(_ *auth.Options, o *loginpage.Options) {
		o.Connectors = func() []loginpage.Connector {
			return []loginpage.Connector{{ID: `x"><img src=x>`, DisplayName: "<b>Evil</b>"}}
		}
	})
	id := f.reqs.add(`<script>alert("owned")</script>`)
	body := f.browser().get("/login?authRequestID=" + id).Body.String()
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>Evil") || strings.Contains(body, "<img") {
		t.Fatalf("markup from the configuration reached the page:\n%s", body)
	}
	if !strings.Contains(body, "Sign in to &lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;") {
		t.Errorf("client name not shown escaped:\n%s", body)
	}
}

func TestSignIn(t *testing.T) {
	for name, tc := range map[string]struct {
		pw       string
		noID     bool
		code     int
		location string // for 303
		body     []string
		session  bool
	}{
		"right password completes the request": {pw: password, code: http.StatusOK, session: true,
			body: []string{`http-equiv="refresh" content="0;url=https://argocd.example/auth/callback?code=code-`, `id="continue"`}},
		"right password, plain sign-in": {pw: password, noID: true, code: http.StatusSeeOther, location: "/auth/login", session: true},
		"wrong password":                {pw: "wrong password!", code: http.StatusUnauthorized, body: []string{"Wrong username or password.", "Sign in to Argo CD"}},
		"empty password":                {pw: "", code: http.StatusBadRequest, body: []string{"Enter your username and password."}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			user, id := newUser(t), ""
			if !tc.noID {
				id = f.reqs.add("Argo CD")
			}
			w := f.browser().signIn(t, id, user, tc.pw)
			if w.Code != tc.code || w.Header().Get("Location") != tc.location {
				t.Fatalf("POST = %d, Location %q; want %d, %q:\n%s", w.Code, w.Header().Get("Location"), tc.code, tc.location, w.Body)
			}
			checkHeaders(t, w.Header())
			for _, want := range tc.body {
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("answer lacks %q:\n%s", want, w.Body)
				}
			}
			c := sessionCookie(w)
			if (c != nil) != tc.session {
				t.Fatalf("session cookie = %v, want one: %v", c, tc.session)
			}
			if c != nil {
				checkSessionCookie(t, w.Header().Values("Set-Cookie"))
			}
			if tc.code == http.StatusUnauthorized {
				if !strings.Contains(w.Body.String(), `name="username" value="`+user+`"`) || strings.Contains(w.Body.String(), tc.pw) {
					t.Errorf("the form should keep the user name and never the password:\n%s", w.Body)
				}
			}
			if got := f.reqs.completedBy(id); id != "" && (got == user) != tc.session {
				t.Errorf("request completed by %q; want completed: %v", got, tc.session)
			}
		})
	}
}

// checkSessionCookie checks the session cookie's attributes, exactly.
func checkSessionCookie(t *testing.T, setCookies []string) {
	t.Helper()
	for _, sc := range setCookies {
		if !strings.HasPrefix(sc, session.CookieName+"=") {
			continue
		}
		value, attrs, _ := strings.Cut(sc, "; ")
		if !strings.HasPrefix(value, session.CookieName+"=kgk_") {
			t.Errorf("session cookie value is not a key: %q", value)
		}
		// Expires is the key's expiry: checked to be there, its date is the clock's.
		got := regexpExpires.ReplaceAllString(attrs, "Expires=X")
		if want := "Path=/auth/; Expires=X; HttpOnly; Secure; SameSite=Lax"; got != want {
			t.Errorf("session cookie attributes %q, want %q", got, want)
		}
		return
	}
	t.Errorf("no session cookie in %q", setCookies)
}

func TestExistingSessionCompletesAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	b := f.browser()
	user := newUser(t)
	if w := b.signIn(t, "", user, password); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d", w.Code)
	}
	id := f.reqs.add("Argo CD")
	w := b.get("/login?authRequestID=" + id)
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "https://argocd.example/auth/callback?code=code-"+id) {
		t.Fatalf("GET = %d, Location %q; want 303 to the client", w.Code, w.Header().Get("Location"))
	}
	if f.reqs.completedBy(id) != user {
		t.Errorf("request completed by %q, want %q", f.reqs.completedBy(id), user)
	}
	if page := b.get("/login"); !strings.Contains(page.Body.String(), "Signed in as <strong>"+user+"</strong>") {
		t.Errorf("plain page does not say who is signed in:\n%s", page.Body)
	}
}

func TestRefusedSessions(t *testing.T) {
	ctx := context.Background()
	for name, end := range map[string]func(t *testing.T, user string, k *store.Store){
		"disabled user": func(t *testing.T, user string, _ *store.Store) {
			if _, err := userS.Update(ctx, user, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
		},
		"deleted key": func(t *testing.T, user string, k *store.Store) {
			all, err := k.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range all {
				if key.Spec.User == user {
					if err := k.Delete(ctx, key.Name); err != nil {
						t.Fatal(err)
					}
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			b := f.browser()
			user := newUser(t)
			b.signIn(t, "", user, password)
			end(t, user, keys)
			id := f.reqs.add("Argo CD")
			w := b.get("/login?authRequestID=" + id)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `type="password"`) {
				t.Fatalf("GET = %d; want the form again:\n%s", w.Code, w.Body)
			}
			if got := f.reqs.completedBy(id); got != "" {
				t.Errorf("request completed by %q with a dead session", got)
			}
			if _, ok := b.cookies[session.CookieName]; ok {
				t.Errorf("the dead session's cookie was not cleared")
			}
		})
	}
}

func TestUnknownRequest(t *testing.T) {
	for name, edit := range map[string]func(*auth.Options, *loginpage.Options){
		"unknown ID":  nil,
		"no provider": func(_ *auth.Options, o *loginpage.Options) { o.Requests = nil },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, edit)
			b := f.browser()
			tok := token(t, b.get("/login"))
			for method, w := range map[string]*httptest.ResponseRecorder{
				"GET":  b.get("/login?authRequestID=nope"),
				"POST": b.post("/login", url.Values{"authRequestID": {"nope"}, "username": {newUser(t)}, "password": {password}, "csrfToken": {tok}}, nil),
			} {
				if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "unknown or has expired") || !strings.Contains(w.Body.String(), `href="/auth/login"`) {
					t.Errorf("%s = %d; want 400 saying so, with the plain sign-in:\n%s", method, w.Code, w.Body)
				}
				if sessionCookie(w) != nil {
					t.Errorf("%s: a session was started for an unknown request", method)
				}
			}
			if w := b.get("/login"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `type="password"`) {
				t.Errorf("the plain sign-in is gone: %d", w.Code)
			}
		})
	}
}

var regexpExpires = regexp.MustCompile(`Expires=[^;]+`)

// A cross-site form post must neither sign the victim in (login CSRF) nor complete their
// request.
func TestCSRF(t *testing.T) {
	for name, tc := range map[string]struct {
		header map[string]string
		token  func(own, other string) string
	}{
		"cross-site fetch metadata": {header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		"same-site fetch metadata":  {header: map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.edge.example"}},
		"origin mismatch":           {header: map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}},
		"missing token":             {token: func(string, string) string { return "" }},
		"another browser's token":   {token: func(_, other string) string { return other }},
		"token for another request": {token: func(own, _ string) string { return "for-other" }},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			id, user := f.reqs.add("Argo CD"), newUser(t)
			victim, attacker := f.browser(), f.browser()
			own := token(t, victim.get("/login?authRequestID="+id))
			other := token(t, attacker.get("/login?authRequestID="+id))
			tok := own
			if tc.token != nil {
				tok = tc.token(own, other)
			}
			if tok == "for-other" {
				tok = token(t, victim.get("/login?authRequestID="+f.reqs.add("Other")))
			}
			w := victim.post("/login", url.Values{"authRequestID": {id}, "username": {user}, "password": {password}, "csrfToken": {tok}}, tc.header)
			if w.Code != http.StatusForbidden {
				t.Fatalf("POST = %d, want 403:\n%s", w.Code, w.Body)
			}
			if sessionCookie(w) != nil || f.reqs.completedBy(id) != "" {
				t.Errorf("refused post still signed in (%v) or completed (%q)", sessionCookie(w), f.reqs.completedBy(id))
			}
		})
	}
}

func TestTooManyFailures(t *testing.T) {
	f := newFixture(t, func(a *auth.Options, _ *loginpage.Options) {
		a.ClientLimit = auth.Limit{Burst: 1, Every: time.Hour}
		a.UserLimit = auth.Limit{Burst: 2, Every: time.Hour}
	})
	b, user := f.browser(), newUser(t)
	if w := b.signIn(t, "", user, "wrong password 1"); w.Code != http.StatusUnauthorized {
		t.Fatalf("first failure = %d, want 401", w.Code)
	}
	w := b.signIn(t, "", user, password)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "Too many failed sign-ins. Try again in") {
		t.Fatalf("second = %d, Retry-After %q; want 429 saying when:\n%s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if sessionCookie(w) != nil {
		t.Errorf("a limited sign-in started a session")
	}
}

func TestSignOut(t *testing.T) {
	f := newFixture(t, nil)
	b, user := f.browser(), newUser(t)
	b.signIn(t, "", user, password)
	plain := b.cookies[session.CookieName].Value
	page := b.get("/login")
	if !strings.Contains(page.Body.String(), `action="/auth/signout"`) {
		t.Fatalf("no sign-out form:\n%s", page.Body)
	}
	tok := token(t, page)
	if w := b.post("/signout", url.Values{"csrfToken": {"x" + tok}}, nil); w.Code != http.StatusForbidden {
		t.Errorf("sign-out with a wrong token = %d, want 403", w.Code)
	}
	w := b.post("/signout", url.Values{"csrfToken": {tok}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/auth/login" {
		t.Fatalf("sign-out = %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	if _, err := keys.Lookup(context.Background(), plain); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session's key is still there: %v", err)
	}
	if _, ok := b.cookies[session.CookieName]; ok {
		t.Errorf("the session cookie was not cleared")
	}
}

func TestMethodsAndPaths(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		method, path string
		code         int
	}{{"PUT", "/login", 405}, {"GET", "/signout", 405}, {"GET", "/password/login", 404}, {"HEAD", "/login", 405}} {
		w := f.browser().do(httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
	}
}
