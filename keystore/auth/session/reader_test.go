package session_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	keys  *store.Store
	userS *users.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/auth/session", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
		userS = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	})
}

var n atomic.Int64

func unique(p string) string { return fmt.Sprintf("%s-%d-%d", p, time.Now().UnixNano()%1e6, n.Add(1)) }

// newUser creates a store user and returns it.
func newUser(t *testing.T) *users.User {
	t.Helper()
	name := unique("u")
	if err := userS.Create(context.Background(), users.User{Name: name}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	u, err := userS.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newKey stores a key for u (its UID recorded) and returns the plain key and the key's name.
func newKey(t *testing.T, u *users.User, typ v1.AccessKeyType, ttl int64, disabled bool) (string, string) {
	t.Helper()
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: unique("k")},
		Spec: v1.OwnedAccessKeySpec{User: u.Name, Type: typ, TTL: ttl, Disabled: disabled}}
	accesskey.SetOwnerUID(k, u.UID)
	plain, err := keys.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return plain, k.Name
}

// lookupCase is a cookie and what Lookup must make of it.
type lookupCase struct {
	cookie  func(t *testing.T) (plain, user string)
	want    string // "" for a session; else what the ErrNoSession says
	cleared bool
}

func lookupCases() map[string]lookupCase {
	ctx := context.Background()
	return map[string]lookupCase{
		"no cookie": {cookie: func(*testing.T) (string, string) { return "", "" }, want: "no session"},
		"unknown key": {cookie: func(*testing.T) (string, string) { return "kgk_nothing-like-this-was-ever-stored-000000", "" },
			want: "unknown key", cleared: true},
		"valid": {cookie: func(t *testing.T) (string, string) {
			u := newUser(t)
			p, _ := newKey(t, u, v1.AccessKeyTypeLogin, 3600, false)
			return p, u.Name
		}},
		"not a login key": {cookie: func(t *testing.T) (string, string) {
			p, _ := newKey(t, newUser(t), v1.AccessKeyTypeUser, 3600, false)
			return p, ""
		}, want: "not a login key", cleared: true},
		"disabled key": {cookie: func(t *testing.T) (string, string) {
			p, _ := newKey(t, newUser(t), v1.AccessKeyTypeLogin, 3600, true)
			return p, ""
		}, want: "is disabled", cleared: true},
		"expired key": {cookie: func(t *testing.T) (string, string) {
			p, _ := newKey(t, newUser(t), v1.AccessKeyTypeLogin, 1, false)
			time.Sleep(1100 * time.Millisecond)
			return p, ""
		}, want: "has expired", cleared: true},
		"deleted key": {cookie: func(t *testing.T) (string, string) {
			p, name := newKey(t, newUser(t), v1.AccessKeyTypeLogin, 3600, false)
			if err := keys.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
			return p, ""
		}, want: "unknown key", cleared: true},
		"disabled user": {cookie: func(t *testing.T) (string, string) {
			u := newUser(t)
			p, _ := newKey(t, u, v1.AccessKeyTypeLogin, 3600, false)
			if _, err := userS.Update(ctx, u.Name, func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			return p, ""
		}, want: "is disabled", cleared: true},
		"re-created user": {cookie: func(t *testing.T) (string, string) {
			u := newUser(t)
			p, _ := newKey(t, u, v1.AccessKeyTypeLogin, 3600, false)
			if err := userS.Delete(ctx, u.Name); err != nil {
				t.Fatal(err)
			}
			if err := userS.Create(ctx, users.User{Name: u.Name}, "another password here"); err != nil {
				t.Fatal(err)
			}
			return p, ""
		}, want: "earlier user", cleared: true},
	}
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	for name, tc := range lookupCases() {
		t.Run(name, func(t *testing.T) {
			plain, user := tc.cookie(t)
			r := httptest.NewRequest(http.MethodGet, "/login", nil)
			if plain != "" {
				r.AddCookie(&http.Cookie{Name: session.CookieName, Value: plain})
			}
			w := httptest.NewRecorder()
			rd := &session.Reader{Keys: keys, Users: userS}
			s, err := rd.Lookup(ctx, w, r)
			if tc.want == "" {
				if err != nil || s.User != user || s.Key.Spec.Type != v1.AccessKeyTypeLogin {
					t.Fatalf("Lookup = %+v, %v; want a session of %s", s, err, user)
				}
			} else if !errors.Is(err, session.ErrNoSession) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Lookup error = %v; want ErrNoSession saying %q", err, tc.want)
			}
			cleared := strings.Contains(w.Header().Get("Set-Cookie"), session.CookieName+"=;")
			if cleared != tc.cleared {
				t.Errorf("cookie cleared = %v, want %v (Set-Cookie %q)", cleared, tc.cleared, w.Header().Get("Set-Cookie"))
			}
		})
	}
}

type failingKeys struct{}

func (failingKeys) Lookup(context.Context, string) (*v1.OwnedAccessKey, error) {
	return nil, errors.New("redis: connection refused")
}

// A store that cannot answer is not "no session": the cookie stays, the caller answers 503.
func TestLookupStoreDownKeepsTheCookie(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/login", nil)
	r.AddCookie(&http.Cookie{Name: session.CookieName, Value: "kgk_whatever"})
	w := httptest.NewRecorder()
	_, err := (&session.Reader{Keys: failingKeys{}, Users: userS}).Lookup(context.Background(), w, r)
	if err == nil || errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Lookup error = %v; want a store error, not ErrNoSession", err)
	}
	if sc := w.Header().Get("Set-Cookie"); sc != "" {
		t.Errorf("cookie touched: %q", sc)
	}
}
