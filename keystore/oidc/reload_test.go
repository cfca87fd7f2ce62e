package oidc_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/oidc"
)

// TestClientsFollowTheConfiguration: every request reads the clients in force, so a client
// added to the file (config.Watcher) signs in without a restart, and one removed no longer
// does.
func TestClientsFollowTheConfiguration(t *testing.T) {
	var cur atomic.Pointer[config.OIDC]
	cur.Store(clients(t))
	e := newEnv(t, func(o *oidc.Options) { o.Clients = cur.Load })
	authorize := func() int {
		q := url.Values{"client_id": {"late"}, "redirect_uri": {"https://late.example.com/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
		resp, err := e.http.Get(e.srv.URL + "/oidc/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := authorize(); code != http.StatusBadRequest {
		t.Fatalf("a client not yet configured: %d, want 400", code)
	}
	added := *cur.Load()
	added.Clients = append(append([]config.Client{}, added.Clients...), config.Client{Name: "Late", ClientID: "late", RedirectURIs: []string{"https://late.example.com/cb"}})
	cur.Store(&added)
	if code := authorize(); code != http.StatusFound {
		t.Errorf("the client once configured: %d, want a redirect to the login page", code)
	}
	cur.Store(clients(t))
	if code := authorize(); code != http.StatusBadRequest {
		t.Errorf("the client once removed: %d, want 400", code)
	}
}
