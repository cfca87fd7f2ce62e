package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	rdb   redis.UniversalClient
	keys  *store.Store
	userS *users.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/auth", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewUniversalClient(srv.UniversalOptions())
		auth.SetTestRedis(rdb)
		keys = store.New(rdb)
		// The lowest bcrypt cost keeps the tests fast; Authenticate is the same code at any cost.
		userS = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	})
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

var uniqueN atomic.Int64

// unique gives a name no other test, nor another run against the same Redis, uses.
func unique(name string) string {
	return fmt.Sprintf("%s-%s-%d", name, runID, uniqueN.Add(1))
}

const password = "correct horse battery staple"

// newUser creates a user with the groups dev and qa and returns its name.
func newUser(t *testing.T, prefix string, disabled bool) string {
	t.Helper()
	name := unique(prefix)
	if err := userS.Create(context.Background(), users.User{Name: name, Groups: []string{"dev", "qa"}, Disabled: disabled}, password); err != nil {
		t.Fatal(err)
	}
	return name
}

// limitPrefix is a prefix of failed-login buckets no other handler of the tests uses: each
// handler counts its own, as each test's replica would on a Redis of its own.
func limitPrefix() string { return "keygate:{" + unique("loginlimits") + "}:" }

// clock is a settable clock for the limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	h     *auth.Handler
	reg   *prometheus.Registry
	log   *logbuf.Buffer
	clock *clock
}

// newFixture returns a handler on the real stores; edit changes its options first.
func newFixture(t *testing.T, edit func(*auth.Options)) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), log: &logbuf.Buffer{}, clock: &clock{t: time.Now()}}
	opts := auth.Options{
		Keys:       keys,
		Users:      userS,
		Log:        slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: f.reg,
		Limits:     auth.LimitStore{Redis: rdb, Now: f.clock.Now, Prefix: limitPrefix()},
	}
	if edit != nil {
		edit(&opts)
	}
	var err error
	if f.h, err = auth.New(opts); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) do(req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	return w
}

// login posts a password login from client address addr.
func (f *fixture) login(user, pw, addr string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(auth.LoginRequest{Username: user, Password: pw})
	req := httptest.NewRequest(http.MethodPost, auth.LoginPath, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	// As Envoy appends it: the client's own entries first, the peer last.
	req.Header.Set("X-Forwarded-For", "203.0.113.99, "+addr)
	return f.do(req)
}

func (f *fixture) logout(authorization string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, auth.LogoutPath, nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return f.do(req)
}

// loginOK logs user in and returns the response.
func (f *fixture) loginOK(t *testing.T, user, addr string) auth.LoginResponse {
	t.Helper()
	w := f.login(user, password, addr)
	if w.Code != http.StatusOK {
		t.Fatalf("login of %s: %d %s", user, w.Code, w.Body)
	}
	var resp auth.LoginResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("login response %s: %v", w.Body, err)
	}
	return resp
}

// counter is the value of a counter series with the given result label.
// counter is the sum of name's series with result, over every method.
func (f *fixture) counter(t *testing.T, name, result string) float64 {
	t.Helper()
	sum, found := 0.0, false
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					sum += m.GetCounter().GetValue()
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("no series %s{result=%q}", name, result)
	}
	return sum
}

// status decodes a Status body and checks its code, kind and status.
func status(t *testing.T, w *httptest.ResponseRecorder, code int) metav1.Status {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var s metav1.Status
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatalf("body %s is not a Status: %v", w.Body, err)
	}
	want := metav1.StatusFailure
	if code < 300 {
		want = metav1.StatusSuccess
	}
	if s.Kind != "Status" || s.APIVersion != "v1" || s.Status != want || int(s.Code) != code || s.Message == "" {
		t.Errorf("Status %+v: want kind Status, v1, status %s, code %d and a message", s, want, code)
	}
	return s
}

// checkOwnerUID fails unless login key k records the UID of the store user named user.
func checkOwnerUID(t *testing.T, k *v1.OwnedAccessKey, user string) {
	t.Helper()
	stored, err := userS.Get(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if got := accesskey.OwnerUID(k); got == "" || got != stored.UID {
		t.Errorf("owner uid on the login key %q, want the user's %q", got, stored.UID)
	}
}

func TestLoginIssuesALoginKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *auth.Options) { o.LoginTTL = 2 * time.Hour })
	user := newUser(t, "alice", false)

	before := time.Now().UTC().Truncate(time.Second)
	w := f.login(user, password, "192.0.2.10")
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// The exact field names Loft's clients read, and no others.
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var fields []string
	for k := range raw {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	if got := strings.Join(fields, ","); got != "accessKey,expiresAt,name,user" {
		t.Errorf("response fields %s, want accessKey,expiresAt,name,user", got)
	}
	var resp auth.LoginResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.AccessKey, store.KeyPrefix) || resp.User != user {
		t.Errorf("response %+v: want a %s key for %s", resp, store.KeyPrefix, user)
	}
	if !regexp.MustCompile(`^login-` + regexp.QuoteMeta(user) + `-[a-z0-9]{5}$`).MatchString(resp.Name) {
		t.Errorf("name %q, want login-%s-<5 characters>", resp.Name, user)
	}

	k, err := keys.Lookup(ctx, resp.AccessKey)
	if err != nil {
		t.Fatalf("Lookup of the issued key: %v", err)
	}
	// No groups: the edge sends the user's as the store has them at each request.
	if k.Name != resp.Name || k.Spec.Type != v1.AccessKeyTypeLogin || k.Spec.User != user ||
		len(k.Spec.Groups) != 0 || k.Spec.TTL != 7200 ||
		k.Spec.DisplayName != "login of "+user || k.Spec.Disabled || k.Spec.Scope != nil {
		t.Errorf("stored key %+v: want name %s, type Login, user %s, no groups, ttl 7200, display name \"login of %s\", enabled, unscoped", k.Spec, resp.Name, user, user)
	}
	checkOwnerUID(t, k, user)
	expires, err := time.Parse(time.RFC3339, resp.ExpiresAt)
	if err != nil {
		t.Fatalf("expiresAt %q: %v", resp.ExpiresAt, err)
	}
	if want := k.CreationTimestamp.Add(2 * time.Hour); !expires.Equal(want) {
		t.Errorf("expiresAt %v, want creation + ttl = %v", expires, want)
	}
	if expires.Before(before.Add(2*time.Hour)) || expires.After(time.Now().Add(2*time.Hour+time.Second)) {
		t.Errorf("expiresAt %v, want about two hours from now", expires)
	}
	if got := f.counter(t, "keygate_keystore_logins_total", "ok"); got != 1 {
		t.Errorf("logins ok = %v, want 1", got)
	}

	// A second login is a second key.
	again := f.loginOK(t, user, "192.0.2.10")
	if again.Name == resp.Name || again.AccessKey == resp.AccessKey {
		t.Errorf("second login gave the same key name or key")
	}
}

func TestDefaultLoginTTL(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.loginOK(t, newUser(t, "ttl", false), "192.0.2.11")
	k, err := keys.Lookup(context.Background(), resp.AccessKey)
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec.TTL != int64(auth.DefaultLoginTTL/time.Second) {
		t.Errorf("ttl %d, want %d", k.Spec.TTL, int64(auth.DefaultLoginTTL/time.Second))
	}
}

func TestRefusalsLookAlike(t *testing.T) {
	f := newFixture(t, nil)
	user := newUser(t, "bob", false)
	disabled := newUser(t, "carol", true)
	cases := map[string]auth.LoginRequest{
		"wrong password":     {Username: user, Password: "not the password"},
		"unknown user":       {Username: unique("nobody"), Password: password},
		"disabled user":      {Username: disabled, Password: password},
		"invalid user name":  {Username: "Not A Name", Password: password},
		"over-long password": {Username: user, Password: password + strings.Repeat("x", 80)},
	}
	var first []byte
	for name, c := range cases {
		w := f.login(c.Username, c.Password, "192.0.2.20")
		s := status(t, w, http.StatusUnauthorized)
		if s.Reason != metav1.StatusReasonUnauthorized {
			t.Errorf("%s: reason %q", name, s.Reason)
		}
		if first == nil {
			first = w.Body.Bytes()
		} else if string(w.Body.Bytes()) != string(first) {
			t.Errorf("%s: body %s differs from %s", name, w.Body, first)
		}
	}
	if got := f.counter(t, "keygate_keystore_logins_total", "invalid"); got != float64(len(cases)) {
		t.Errorf("logins invalid = %v, want %d", got, len(cases))
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, nil)
	user := newUser(t, "dave", false)
	good := `{"username":"` + user + `","password":"` + password + `"}`
	cases := map[string]struct {
		method, path, contentType, body string
		code                            int
		reason                          metav1.StatusReason
		mention                         string
	}{
		"malformed JSON":        {"POST", auth.LoginPath, "application/json", `{"username":`, 400, metav1.StatusReasonBadRequest, "not a JSON login request"},
		"unknown field":         {"POST", auth.LoginPath, "application/json", `{"username":"` + user + `","password":"x","otp":"1"}`, 400, metav1.StatusReasonBadRequest, `unknown field "otp"`},
		"field in wrong case":   {"POST", auth.LoginPath, "application/json", `{"Username":"` + user + `","password":"x"}`, 400, metav1.StatusReasonBadRequest, `unknown field "Username"`},
		"duplicate field":       {"POST", auth.LoginPath, "application/json", `{"username":"a","username":"` + user + `","password":"x"}`, 400, metav1.StatusReasonBadRequest, "duplicate field"},
		"two objects":           {"POST", auth.LoginPath, "application/json", good + good, 400, metav1.StatusReasonBadRequest, "not a JSON login request"},
		"array":                 {"POST", auth.LoginPath, "application/json", `[]`, 400, metav1.StatusReasonBadRequest, "not a JSON login request"},
		"password not a string": {"POST", auth.LoginPath, "application/json", `{"username":"` + user + `","password":12345678}`, 400, metav1.StatusReasonBadRequest, "not a JSON login request"},
		"no password":           {"POST", auth.LoginPath, "application/json", `{"username":"` + user + `"}`, 400, metav1.StatusReasonBadRequest, "both required"},
		"empty body":            {"POST", auth.LoginPath, "application/json", ``, 400, metav1.StatusReasonBadRequest, "not a JSON login request"},
		"null":                  {"POST", auth.LoginPath, "application/json", `null`, 400, metav1.StatusReasonBadRequest, "both required"},
		"form content type":     {"POST", auth.LoginPath, "application/x-www-form-urlencoded", good, 415, metav1.StatusReasonUnsupportedMediaType, "Content-Type: application/json"},
		"text content type":     {"POST", auth.LoginPath, "text/plain", good, 415, metav1.StatusReasonUnsupportedMediaType, "Content-Type: application/json"},
		"no content type":       {"POST", auth.LoginPath, "", good, 415, metav1.StatusReasonUnsupportedMediaType, "Content-Type: application/json"},
		"too large":             {"POST", auth.LoginPath, "application/json", `{"username":"` + user + `","password":"` + strings.Repeat("x", auth.MaxBodyBytes) + `"}`, 413, metav1.StatusReasonRequestEntityTooLarge, "at most"},
		"GET login":             {"GET", auth.LoginPath, "", "", 405, metav1.StatusReasonMethodNotAllowed, "POST"},
		"PUT login":             {"PUT", auth.LoginPath, "application/json", good, 405, metav1.StatusReasonMethodNotAllowed, "POST"},
		"GET logout":            {"GET", auth.LogoutPath, "", "", 405, metav1.StatusReasonMethodNotAllowed, "POST"},
		"unknown path":          {"POST", "/password/login/extra", "application/json", good, 404, metav1.StatusReasonNotFound, "/auth/password/login"},
		"root":                  {"GET", "/", "", "", 404, metav1.StatusReasonNotFound, "/auth/password/login"},
		"prefix not stripped":   {"POST", "/auth/password/login", "application/json", good, 404, metav1.StatusReasonNotFound, "/auth/password/login"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			w := f.do(req)
			s := status(t, w, c.code)
			if s.Reason != c.reason || !strings.Contains(s.Message, c.mention) {
				t.Errorf("reason %q, message %q; want %q and a mention of %q", s.Reason, s.Message, c.reason, c.mention)
			}
			if c.code == 405 && w.Header().Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", w.Header().Get("Allow"))
			}
			if strings.Contains(w.Body.String(), password) {
				t.Errorf("the answer quotes the password: %s", w.Body)
			}
		})
	}
	// None of them was a login attempt: the user still logs in, and no bucket filled.
	f.loginOK(t, user, "192.0.2.30")
	if got := f.counter(t, "keygate_keystore_logins_total", "invalid"); got != 0 {
		t.Errorf("logins invalid = %v, want 0", got)
	}
	if got := f.counter(t, "keygate_keystore_logins_total", "bad_request"); got == 0 {
		t.Errorf("logins bad_request = 0")
	}
}

func TestContentTypeWithCharset(t *testing.T) {
	f := newFixture(t, nil)
	user := newUser(t, "erin", false)
	req := httptest.NewRequest(http.MethodPost, auth.LoginPath, strings.NewReader(`{"username":"`+user+`","password":"`+password+`"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if w := f.do(req); w.Code != http.StatusOK {
		t.Errorf("login with charset: %d %s", w.Code, w.Body)
	}
}

// A client that keeps failing for a user is slowed; the user is not: the right password from
// another address, and another user from the same address, still log in.
func TestRateLimitPerClient(t *testing.T) {
	f := newFixture(t, nil) // 5 failures per (user, address), 50 per address, 100 per user
	victim := newUser(t, "frank", false)
	other := newUser(t, "grace", false)
	const addr = "192.0.2.40"

	for i := range auth.DefaultClientLimit.Burst {
		if w := f.login(victim, "wrong password", addr); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	// Even the right password is refused from that address now, before it is checked.
	w := f.login(victim, password, addr)
	s := status(t, w, http.StatusTooManyRequests)
	if s.Reason != metav1.StatusReasonTooManyRequests || s.Details == nil || s.Details.RetryAfterSeconds < 1 {
		t.Errorf("429 Status %+v: want reason TooManyRequests and details.retryAfterSeconds", s)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra != 12 {
		t.Errorf("Retry-After %q, want 12 seconds (one try back every 12 s)", w.Header().Get("Retry-After"))
	}
	// From another address the user logs in: the limit is on the pair, not the name.
	f.loginOK(t, victim, "198.51.100.7")
	// Another user, from the same address, is not affected.
	f.loginOK(t, other, addr)

	// One try comes back after Retry-After: it is honest.
	f.clock.Add(time.Duration(ra) * time.Second)
	f.loginOK(t, victim, addr)

	if got := f.counter(t, "keygate_keystore_logins_total", "limited"); got != 1 {
		t.Errorf("logins limited = %v, want 1", got)
	}
	if !strings.Contains(f.log.String(), "too many failed logins") || !strings.Contains(f.log.String(), "limit=client") {
		t.Errorf("no log line for the refusal naming the client limit:\n%s", f.log)
	}
}

func TestRateLimitPerAddress(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.AddressLimit = auth.Limit{Burst: 3, Every: 20 * time.Second} })
	user := newUser(t, "heidi", false)
	const addr = "192.0.2.50"
	// Spraying many names from one address: unknown and invalid names count too.
	for i, name := range []string{unique("x"), "Not A Name", unique("y")} {
		if w := f.login(name, "guess", addr); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	status(t, f.login(user, password, addr), http.StatusTooManyRequests)
	// An IPv4 address inside IPv6, as some stacks write it, is the same address.
	status(t, f.login(user, password, "::ffff:"+addr), http.StatusTooManyRequests)
	// Another address is not affected.
	f.loginOK(t, user, "192.0.2.51")

	// Once the bucket has refilled the address is free again.
	f.clock.Add(time.Minute)
	f.loginOK(t, user, addr)
}

func TestRateLimitIPv6PerSlash64(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.AddressLimit = auth.Limit{Burst: 2, Every: 30 * time.Second} })
	user := newUser(t, "ivan", false)
	f.login(unique("x"), "guess", "2001:db8:1:2::1")
	f.login(unique("y"), "guess", "2001:db8:1:2::ffff")
	status(t, f.login(user, password, "2001:db8:1:2:abcd::9"), http.StatusTooManyRequests)
	f.loginOK(t, user, "2001:db8:1:3::1")
}

func TestClientAddressFromRemoteAddrWithoutForwardedFor(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.AddressLimit = auth.Limit{Burst: 1, Every: time.Minute} })
	user := newUser(t, "judy", false)
	post := func(name, pw, remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, auth.LoginPath, strings.NewReader(`{"username":"`+name+`","password":"`+pw+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		return f.do(req)
	}
	post(unique("x"), "guess", "192.0.2.60:1234")
	status(t, post(user, password, "192.0.2.60:5678"), http.StatusTooManyRequests)
	if w := post(user, password, "192.0.2.61:1234"); w.Code != http.StatusOK {
		t.Errorf("another address: %d %s", w.Code, w.Body)
	}
}

func TestSuccessfulLoginsAreNotLimited(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) {
		o.ClientLimit = auth.Limit{Burst: 1, Every: time.Minute}
		o.AddressLimit = auth.Limit{Burst: 2, Every: time.Minute}
		o.UserLimit = auth.Limit{Burst: 2, Every: time.Second}
	})
	user := newUser(t, "kim", false)
	for range 6 {
		f.loginOK(t, user, "192.0.2.70")
	}
}

// blockingUsers holds every Authenticate until released, and refuses it then.
type blockingUsers struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingUsers) Authenticate(ctx context.Context, name, password string) (*users.User, error) {
	b.started <- struct{}{}
	<-b.release
	return nil, users.ErrInvalidCredentials
}

// Parallel guesses must not all pass the check before the first failure is counted: bcrypt
// takes a quarter second, time enough for thousands of requests.
func TestConcurrentGuessesAreBounded(t *testing.T) {
	// started has room for a fourth attempt, so that a limiter letting it through makes the
	// test fail rather than hang.
	b := &blockingUsers{started: make(chan struct{}, 4), release: make(chan struct{})}
	// The user's ceiling holds three, each client one: three addresses fill it.
	f := newFixture(t, func(o *auth.Options) {
		o.Users = b
		o.ClientLimit = auth.Limit{Burst: 1, Every: time.Minute}
		o.UserLimit = auth.Limit{Burst: 3, Every: time.Second}
	})
	var wg sync.WaitGroup
	codes := make(chan int, 4)
	for i := range 3 {
		wg.Go(func() { codes <- f.login("target", "guess", fmt.Sprintf("192.0.2.8%d", i)).Code })
	}
	for range 3 {
		<-b.started
	}
	// Three attempts are running, the bucket holds three: a fourth waits for their outcome.
	fourth := make(chan *httptest.ResponseRecorder, 1)
	go func() { fourth <- f.login("target", "guess", "192.0.2.89") }()
	select {
	case w := <-fourth:
		close(b.release)
		status(t, w, http.StatusTooManyRequests)
	case <-b.started:
		t.Error("a fourth attempt was let through while three were running")
		close(b.release)
		<-fourth
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("a running attempt ended with %d, want 401", c)
		}
	}
}

// failingUsers cannot decide: its Redis is gone.
type failingUsers struct{}

func (failingUsers) Authenticate(ctx context.Context, name, password string) (*users.User, error) {
	return nil, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

func TestUserStoreOutageIs503AndCostsNoTry(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) {
		o.Users = failingUsers{}
		o.ClientLimit = auth.Limit{Burst: 1, Every: time.Minute}
	})
	for range 3 {
		s := status(t, f.login("alice", password, "192.0.2.90"), http.StatusServiceUnavailable)
		if s.Reason != metav1.StatusReasonServiceUnavailable {
			t.Errorf("reason %q", s.Reason)
		}
	}
	if got := f.counter(t, "keygate_keystore_logins_total", "error"); got != 3 {
		t.Errorf("logins error = %v, want 3", got)
	}
}

// A Redis that cannot count failed logins refuses every login with 503, before the password is
// checked: no guess goes uncounted.
func TestLimitsOutageIs503BeforeThePassword(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()
	passwords := &countingUsers{}
	f := newFixture(t, func(o *auth.Options) {
		o.Users = passwords
		o.Limits = auth.LimitStore{Redis: down}
	})
	s := status(t, f.login("alice", password, "192.0.2.91"), http.StatusServiceUnavailable)
	if s.Reason != metav1.StatusReasonServiceUnavailable || passwords.calls.Load() != 0 {
		t.Errorf("reason %q after %d password checks; want ServiceUnavailable and none", s.Reason, passwords.calls.Load())
	}
	if got := f.counter(t, "keygate_keystore_logins_total", "error"); got != 1 {
		t.Errorf("logins error = %v, want 1", got)
	}
}

// countingUsers counts the passwords it is asked to check, and accepts none.
type countingUsers struct{ calls atomic.Int64 }

func (c *countingUsers) Authenticate(ctx context.Context, name, password string) (*users.User, error) {
	c.calls.Add(1)
	return nil, users.ErrInvalidCredentials
}

// oddUsers accepts anyone, under a name users.Store would refuse, as an SSO source might give.
type oddUsers struct{ name string }

func (o oddUsers) Authenticate(ctx context.Context, name, password string) (*users.User, error) {
	return &users.User{Name: o.name, Groups: []string{"sso"}}, nil
}

func TestKeyNameIsValidForOddUserNames(t *testing.T) {
	for _, name := range []string{
		"Alice.Example@corp.example.com",
		"--weird__name--",
		"ÜNICODE",
		"!!!",
		strings.Repeat("long-name.", 30),
	} {
		f := newFixture(t, func(o *auth.Options) { o.Users = oddUsers{name: name} })
		resp := f.loginOK(t, "anyone", "192.0.2.100")
		if errs := validation.IsDNS1123Label(resp.Name); len(errs) > 0 || !strings.HasPrefix(resp.Name, "login-") {
			t.Errorf("user %q: key name %q is not a login-... DNS-1123 label: %v", name, resp.Name, errs)
		}
		k, err := keys.Lookup(context.Background(), resp.AccessKey)
		if err != nil {
			t.Fatal(err)
		}
		if k.Spec.User != name || resp.User != name {
			t.Errorf("spec.user %q, response user %q; want %q unchanged", k.Spec.User, resp.User, name)
		}
	}
}

func TestLogoutDeletesTheLoginKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	user := newUser(t, "leo", false)
	resp := f.loginOK(t, user, "192.0.2.110")

	s := status(t, f.logout("Bearer "+resp.AccessKey), http.StatusOK)
	if s.Details == nil || s.Details.Name != resp.Name {
		t.Errorf("logout Status %+v: want details naming %s", s, resp.Name)
	}
	if _, err := keys.Lookup(ctx, resp.AccessKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup after logout: %v, want ErrNotFound", err)
	}
	if _, err := keys.Get(ctx, resp.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after logout: %v, want ErrNotFound", err)
	}
	// A second logout with the same key: it is unknown now.
	w := f.logout("Bearer " + resp.AccessKey)
	status(t, w, http.StatusUnauthorized)
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	if got := f.counter(t, "keygate_keystore_logouts_total", "ok"); got != 1 {
		t.Errorf("logouts ok = %v, want 1", got)
	}
	if got := f.counter(t, "keygate_keystore_logouts_total", "unauthenticated"); got != 1 {
		t.Errorf("logouts unauthenticated = %v, want 1", got)
	}
}

func TestLogoutOfExpiredLoginKeyDeletesIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	name := unique("login-expired")
	plain, err := keys.Create(ctx, &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Now().Add(-48 * time.Hour))},
		Spec:       v1.OwnedAccessKeySpec{User: "mia", Type: v1.AccessKeyTypeLogin, TTL: 3600},
	})
	if err != nil {
		t.Fatal(err)
	}
	status(t, f.logout("Bearer "+plain), http.StatusOK)
	if _, err := keys.Get(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after logout: %v, want ErrNotFound", err)
	}
}

func TestLogoutRefusesOtherKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	for _, typ := range []v1.AccessKeyType{v1.AccessKeyTypeUser, v1.AccessKeyTypeNone, v1.AccessKeyTypeOther} {
		name := unique("ci")
		plain, err := keys.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.OwnedAccessKeySpec{User: "ci", Type: typ}})
		if err != nil {
			t.Fatal(err)
		}
		s := status(t, f.logout("Bearer "+plain), http.StatusForbidden)
		if want := "kubectl delete ownedaccesskeys.management.loft.sh " + name; s.Reason != metav1.StatusReasonForbidden || !strings.Contains(s.Message, want) || !strings.Contains(s.Message, "login key") {
			t.Errorf("type %q: Status %+v: want reason Forbidden and a message saying only login keys log out, and %q", typ, s, want)
		}
		if k, err := keys.Lookup(ctx, plain); err != nil || k.Name != name {
			t.Errorf("type %q: the key no longer works: %v", typ, err)
		}
	}
	if got := f.counter(t, "keygate_keystore_logouts_total", "forbidden"); got != 3 {
		t.Errorf("logouts forbidden = %v, want 3", got)
	}
}

func TestLogoutRefusesADisabledLoginKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	resp := f.loginOK(t, newUser(t, "nina", false), "192.0.2.120")
	if err := keys.SetDisabled(ctx, resp.Name, true); err != nil {
		t.Fatal(err)
	}
	status(t, f.logout("Bearer "+resp.AccessKey), http.StatusUnauthorized)
	if _, err := keys.Get(ctx, resp.Name); err != nil {
		t.Errorf("the disabled key is gone: %v; it should stay for its administrator", err)
	}
}

func TestLogoutWithoutAUsableKey(t *testing.T) {
	f := newFixture(t, nil)
	for name, header := range map[string]string{
		"none":         "",
		"basic":        "Basic YWxpY2U6cGFzc3dvcmQ=",
		"empty bearer": "Bearer ",
		"two tokens":   "Bearer a b",
		"unknown key":  "Bearer " + store.KeyPrefix + "unknownunknownunknownunknownunknown",
	} {
		w := f.logout(header)
		s := status(t, w, http.StatusUnauthorized)
		if s.Reason != metav1.StatusReasonUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: Status %+v, WWW-Authenticate %q", name, s, w.Header().Get("WWW-Authenticate"))
		}
	}
	// Two Authorization headers are not one key.
	req := httptest.NewRequest(http.MethodPost, auth.LogoutPath, nil)
	req.Header.Add("Authorization", "Bearer a")
	req.Header.Add("Authorization", "Bearer b")
	status(t, f.do(req), http.StatusUnauthorized)
}

// The plain key leaves only in the login response; neither it nor a password is ever logged.
func TestSecretsStayOutOfLogs(t *testing.T) {
	f := newFixture(t, nil)
	user := newUser(t, "olga", false)
	const wrong = "WrongPassword-91f3"
	f.login(user, wrong, "192.0.2.130")
	// A password typed into the user field is not a user name: it must not be logged either.
	const typedIntoName = "S3cret!Pass"
	f.login(typedIntoName, "", "192.0.2.130")
	f.login(typedIntoName, wrong, "192.0.2.130")
	resp := f.loginOK(t, user, "192.0.2.130")

	// A User key, to log the 403 path with a key.
	plainUser, err := keys.Create(context.Background(), &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: unique("olga-ci")}, Spec: v1.OwnedAccessKeySpec{User: user, Type: v1.AccessKeyTypeUser}})
	if err != nil {
		t.Fatal(err)
	}
	f.logout("Bearer " + plainUser)
	f.logout("Bearer " + resp.AccessKey)
	f.logout("Bearer " + resp.AccessKey) // unknown now

	logs := f.log.String()
	for what, secret := range map[string]string{
		"login key":               resp.AccessKey,
		"User key":                plainUser,
		"password":                password,
		"wrong password":          wrong,
		"password typed as name":  typedIntoName,
		"the key's digest":        store.Digest(resp.AccessKey),
		"the key without prefix":  strings.TrimPrefix(resp.AccessKey, store.KeyPrefix),
		"the User key w/o prefix": strings.TrimPrefix(plainUser, store.KeyPrefix),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s:\n%s", what, logs)
		}
	}
	// It does say who and which key.
	for _, want := range []string{"user=" + user, "key=" + resp.Name, "client=192.0.2.130"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	limits := auth.LimitStore{Redis: rdb}
	for name, c := range map[string]struct {
		opts    auth.Options
		mention string
	}{
		"no stores":            {auth.Options{}, "Keys is required"},
		"no users":             {auth.Options{Keys: keys}, "Users is required"},
		"no limits":            {auth.Options{Keys: keys, Users: userS}, "Limits.Redis is required"},
		"negative ttl":         {auth.Options{Keys: keys, Users: userS, Limits: limits, LoginTTL: -time.Hour}, "LoginTTL"},
		"sub-second ttl":       {auth.Options{Keys: keys, Users: userS, Limits: limits, LoginTTL: time.Millisecond}, "at least 1s"},
		"fractional ttl":       {auth.Options{Keys: keys, Users: userS, Limits: limits, LoginTTL: 1500 * time.Millisecond}, "whole number of seconds"},
		"negative burst":       {auth.Options{Keys: keys, Users: userS, Limits: limits, AddressLimit: auth.Limit{Burst: -1, Every: time.Second}}, "AddressLimit"},
		"no refill":            {auth.Options{Keys: keys, Users: userS, Limits: limits, ClientLimit: auth.Limit{Burst: 3}}, "ClientLimit"},
		"user ceiling too low": {auth.Options{Keys: keys, Users: userS, Limits: limits, UserLimit: auth.Limit{Burst: 5, Every: time.Second}}, "UserLimit"},
		"user ceiling slower":  {auth.Options{Keys: keys, Users: userS, Limits: limits, UserLimit: auth.Limit{Burst: 100, Every: time.Minute}}, "must be above ClientLimit"},
	} {
		if _, err := auth.New(c.opts); err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: New = %v, want an error mentioning %q", name, err, c.mention)
		}
	}
	// Two handlers on one registry: an error, not a panic.
	reg := prometheus.NewRegistry()
	if _, err := auth.New(auth.Options{Keys: keys, Users: userS, Limits: limits, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.New(auth.Options{Keys: keys, Users: userS, Limits: limits, Registerer: reg}); err == nil {
		t.Error("a second handler on the same registry: no error")
	}
}

func TestMetricNamesLint(t *testing.T) {
	f := newFixture(t, nil)
	metricstest.Lint(t, f.reg)
	// Every result exists at 0 before anything happens.
	for _, r := range []string{"ok", "invalid", "limited", "bad_request", "error"} {
		f.counter(t, "keygate_keystore_logins_total", r)
	}
	for _, r := range []string{"ok", "unauthenticated", "forbidden", "bad_request", "error"} {
		f.counter(t, "keygate_keystore_logouts_total", r)
	}
}

// Over a real connection, as Envoy would forward it: a body past the limit is cut off.
func TestOverHTTP(t *testing.T) {
	f := newFixture(t, nil)
	user := newUser(t, "pat", false)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+auth.LoginPath, "application/json", strings.NewReader(`{"username":"`+user+`","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var lr auth.LoginResponse
	err = json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || lr.AccessKey == "" {
		t.Fatalf("login over HTTP: %d %+v %v", resp.StatusCode, lr, err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+auth.LogoutPath, nil)
	req.Header.Set("Authorization", "Bearer "+lr.AccessKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("logout over HTTP: %d", resp.StatusCode)
	}
}
