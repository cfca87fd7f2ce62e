package oidc_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/store"
)

// downKeys is the key store while its Redis does not answer lookups.
type downKeys struct{ *store.Store }

func (downKeys) Lookup(context.Context, string) (*v1.OwnedAccessKey, error) {
	return nil, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}

// TestStoreOutageIsNoInvalidGrant: a refresh that cannot be checked for want of the store is
// 503 server_error, not invalid_grant (which tells a client to drop its session), and the
// refresh token works once the store is back.
func TestStoreOutageIsNoInvalidGrant(t *testing.T) {
	up := newEnv(t, nil)
	u := up.newUser()
	tok := up.login(u, up.publicRP())
	down := newEnv(t, func(o *oidc.Options) { o.Keys = downKeys{keys} })
	_, err := down.refresh(down.publicRP(), tok.RefreshToken)
	if oauthError(err) != "server_error" || retrieveStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("refresh while the store is down: %v, want 503 server_error", err)
	}
	if _, err := up.refresh(up.publicRP(), tok.RefreshToken); err != nil {
		t.Errorf("refresh once the store is back: %v", err)
	}
}
