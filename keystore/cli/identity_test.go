package cli

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	"github.com/keygate-dev/keygate/keystore/store"
)

// set-user changes only what a flag is given for; without any, it is a usage error.
func TestSetUser(t *testing.T) {
	ctx := context.Background()
	name := unique("setme")
	if code, _, errOut := run("create-user", name, "--redis-address", redisAddr, fastCost, "--groups", "dev,ops", "--teams", "platform", "--email", "a@example.com"); code != 0 {
		t.Fatalf("create-user: %s", errOut)
	}
	before, err := userStore().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run("set-user", name, "--redis-address", redisAddr, "--groups", "dev", "--disabled=true")
	if code != 0 || out != "" || !strings.Contains(errOut, `updated user "`+name+`"`) {
		t.Fatalf("set-user: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	u, err := userStore().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Groups, []string{"dev"}) || !u.Disabled || !slices.Equal(u.Teams, []string{"platform"}) || u.Email != "a@example.com" || u.UID != before.UID {
		t.Errorf("after set-user --groups dev --disabled=true: %+v; want only groups and disabled changed", u)
	}
	if code, _, errOut := run("set-user", name, "--redis-address", redisAddr, "--teams", "", "--disabled=false"); code != 0 {
		t.Fatalf("set-user --teams '' --disabled=false: %s", errOut)
	}
	if u, _ = userStore().Get(ctx, name); len(u.Teams) != 0 || u.Disabled {
		t.Errorf("after --teams '' --disabled=false: %+v", u)
	}
	if code, _, errOut := run("set-user", name, "--redis-address", redisAddr); code != 2 || !strings.Contains(errOut, "changes nothing") {
		t.Errorf("set-user without flags: exit %d, %s; want a usage error", code, errOut)
	}
	if code, _, errOut := run("set-user", unique("nobody"), "--redis-address", redisAddr, "--groups", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("set-user of a missing user: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("set-user", name, "--redis-address", redisAddr, "--groups", "system:masters"); code != 1 || !strings.Contains(errOut, "reserved") {
		t.Errorf("set-user --groups system:masters: exit %d, %s", code, errOut)
	}
}

// create-key records the UID of a store user on the key, and none for an external identity.
func TestCreateKeyRecordsOwner(t *testing.T) {
	ctx := context.Background()
	name := unique("owner")
	if code, _, errOut := run("create-user", name, "--redis-address", redisAddr, fastCost); code != 0 {
		t.Fatalf("create-user: %s", errOut)
	}
	u, err := userStore().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	keys := store.New(redis.NewClient(&redis.Options{Addr: redisAddr}))
	for user, want := range map[string]string{name: u.UID, unique("external"): ""} {
		code, out, errOut := run("create-key", "--redis-address", redisAddr, "--user", user)
		if code != 0 {
			t.Fatalf("create-key --user %s: %s", user, errOut)
		}
		k, err := keys.Lookup(ctx, strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if got := accesskey.OwnerUID(k); got != want {
			t.Errorf("key of %s records owner uid %q, want %q", user, got, want)
		}
	}
}
