package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// The user store's groups travel upstream (a key's own only where the user has them), and a
// disabled user's keys are refused. (Changes to a user later: e2e/identity_test.go.)
func TestUserStoreGroupsAndDisabledUsers(t *testing.T) {
	t.Parallel()
	enabled, disabled := unique("ustore"), unique("ustore-off")
	storeUser(t, users.User{Name: enabled, Groups: []string{"e2e-viewers", "dev"}})
	storeUser(t, users.User{Name: disabled, Disabled: true})

	_, key := newOwnedKey(t, v1.OwnedAccessKeySpec{User: enabled, Groups: []string{"dev", "qa"}})
	got := whoami(t, kubeconfig(t, key), demo)
	for _, g := range []string{"dev", "e2e-viewers", "loft:user:" + enabled, "system:authenticated"} {
		if !slices.Contains(got.Groups, g) {
			t.Errorf("groups %v lack %q", got.Groups, g)
		}
	}
	if slices.Contains(got.Groups, "qa") {
		t.Errorf("groups %v hold the key's qa, which the user does not have", got.Groups)
	}

	_, off := newKey(t, v1.OwnedAccessKeySpec{User: disabled})
	resp, body := get(t, off, clusterPath, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("key of a disabled user: HTTP %d %s, want 401", resp.StatusCode, body)
	}
	if s := status(t, resp, body); !strings.Contains(s.Message, fmt.Sprintf("the user %q", disabled)) || !strings.Contains(s.Message, "is disabled") {
		t.Errorf("message %q does not say the user is disabled", s.Message)
	}
}

// storeUser puts u in the platform's user store, as `keystore create-user` would.
func storeUser(t *testing.T, u users.User) {
	t.Helper()
	rdb := redisClient(t)
	defer rdb.Close()
	if err := users.New(rdb, users.Options{Cost: bcrypt.MinCost}).Create(context.Background(), u, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
}
