package auth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/store"
)

// At the bound of login keys, a login deletes the user's oldest login key: the new login
// works, the oldest key is refused, the others keep working.
func TestLoginQuotaEvictsTheOldestLoginKey(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.MaxLoginKeys = 2 })
	user := newUser(t, "quota", false)
	var logins []auth.LoginResponse
	for range 3 {
		logins = append(logins, f.loginOK(t, user, "192.0.2.160"))
	}
	if _, err := keys.Lookup(context.Background(), logins[0].AccessKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the oldest login key: %v, want it deleted", err)
	}
	status(t, f.logout("Bearer "+logins[0].AccessKey), http.StatusUnauthorized)
	for _, l := range logins[1:] {
		if w := f.logout("Bearer " + l.AccessKey); w.Code != http.StatusOK {
			t.Errorf("logout with %s: %d %s", l.Name, w.Code, w.Body)
		}
	}
	if !strings.Contains(f.log.String(), logins[0].Name) || !strings.Contains(f.log.String(), "oldest login keys") {
		t.Errorf("no log line naming the deleted key %s:\n%s", logins[0].Name, f.log)
	}
}
