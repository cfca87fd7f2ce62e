package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

func TestSSOWiring(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgFile := write("keystore.yaml", "auth:\n  connectors:\n  - id: okta\n    oidc: {issuerURL: 'https://127.0.0.1:1', clientId: c, clientSecretFile: /nonexistent}\n")
	keyFile := write("enc", sealed.Generate()+"\n")
	if _, err := ParseFlags(append(append([]string{}, required...), "--external-url", "http://edge")); err == nil || !strings.Contains(err.Error(), "--external-url") {
		t.Fatalf("http external URL: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	build := func(args ...string) (*loginSSO, error) {
		c, err := ParseFlags(append(append([]string{}, required...), args...))
		if err != nil {
			t.Fatal(err)
		}
		w, err := newWatcher(c, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		box, err := loadBox(c)
		if err != nil {
			t.Fatal(err)
		}
		return newSSO(c, store.New(rdb), users.New(rdb, users.Options{}), rdb, w, box, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	}
	if s, err := build(); s != nil || err != nil {
		t.Fatalf("no config file: %v %v, want no SSO", s, err)
	}
	if _, err := build("--config-file", cfgFile); err == nil || !strings.Contains(err.Error(), "--encryption-key-file") {
		t.Fatalf("connectors without an encryption key: %v", err)
	}
	s, err := build("--config-file", cfgFile, "--encryption-key-file", keyFile, "--external-url", "https://edge.example.com")
	if err != nil || s == nil {
		t.Fatalf("SSO: %v", err)
	}
	authH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := loginMux(authH, authH, s.handler())
	// /okta/login reaches the SSO handler, which cannot count the start in this Redis (none
	// listens): 503, before it asks the IdP.
	for path, want := range map[string]int{"/password/login": http.StatusTeapot, "/logout": http.StatusTeapot, "/login": http.StatusTeapot, "/okta/login": http.StatusServiceUnavailable, "/nope/callback": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	if got := s.connectors()(); len(got) != 1 || got[0].ID != "okta" || got[0].DisplayName != "okta" {
		t.Errorf("login page connectors: %+v, want okta", got)
	}
}
