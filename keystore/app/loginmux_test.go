package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// named answers with its name, to see where a path went.
type named string

func (n named) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(n)) }

func TestLoginMux(t *testing.T) {
	for _, withSSO := range []bool{false, true} {
		var sso http.Handler
		fallback := "api"
		if withSSO {
			sso, fallback = named("sso"), "sso"
		}
		mux := loginMux(named("api"), named("page"), sso)
		for path, want := range map[string]string{
			"/password/login": "api", "/logout": "api",
			"/login": "page", "/signout": "page",
			"/okta/login": fallback, "/okta/callback": fallback, "/password/login/x": fallback,
		} {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, nil))
			if got := w.Body.String(); got != want {
				t.Errorf("sso %v: %s went to %q, want %q", withSSO, path, got, want)
			}
		}
	}
}
