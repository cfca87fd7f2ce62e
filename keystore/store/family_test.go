package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// session creates a single sign-on session key (the parent) of user, and a child of it.
func sessionWithChild(t *testing.T, user string) (parent, child *v1.OwnedAccessKey) {
	t.Helper()
	ctx := context.Background()
	_, parent, err := store.CreateObject(ctx, key(unique("session"), v1.OwnedAccessKeySpec{
		User: user, Groups: []string{"dev"}, TTL: 3600, Type: v1.AccessKeyTypeLogin,
		Identity: &v1.AccessKeyIdentity{UserID: "sub", Username: user, Groups: []string{"dev"}, Connector: "idp", ConnectorData: []byte("sealed")},
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, child, err = store.CreateObject(ctx, key(unique("cli"), v1.OwnedAccessKeySpec{User: user, TTL: 7200, Type: v1.AccessKeyTypeLogin, Parent: parent.Name}))
	if err != nil {
		t.Fatal(err)
	}
	return parent, child
}

func mustGet(t *testing.T, name string) *v1.OwnedAccessKey {
	t.Helper()
	k, err := store.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// indexed says whether the index has child under parent, in both directions.
func indexed(t *testing.T, parent, child string) bool {
	t.Helper()
	ctx := context.Background()
	_, zerr := rdb.ZScore(ctx, childrenKey, member(parent, child)).Result()
	p, _ := rdb.HGet(ctx, parentsKey, child).Result()
	return zerr == nil || p != ""
}

// A child starts in step with its parent, and every change of the parent, by any writer,
// reaches it in the same step.
func TestChildFollowsParent(t *testing.T) {
	ctx := context.Background()
	parent, child := sessionWithChild(t, "idp:alice")
	if !slices.Equal(child.Spec.Groups, []string{"dev"}) || child.Spec.Identity == nil || child.Spec.Identity.ConnectorData != nil ||
		child.Spec.TTL > 3600 || child.Spec.TTL < 3590 {
		t.Fatalf("new child %+v: want the session's groups and identity without connectorData, and its end (ttl about 3600, not 7200)", child.Spec)
	}
	// In order: each step starts from the one before.
	for _, tc := range []struct {
		name   string
		change func(*v1.OwnedAccessKey)
		check  func(*v1.OwnedAccessKey) bool
	}{
		{"new groups", func(k *v1.OwnedAccessKey) { k.Spec.Groups = []string{"ops"}; k.Spec.Identity.Groups = []string{"ops"} }, func(c *v1.OwnedAccessKey) bool {
			return slices.Equal(c.Spec.Groups, []string{"ops"}) && slices.Equal(c.Spec.Identity.Groups, []string{"ops"})
		}},
		{"disabled", func(k *v1.OwnedAccessKey) { k.Spec.Disabled = true }, func(c *v1.OwnedAccessKey) bool {
			return c.Spec.Disabled && c.Annotations[accesskey.DisabledByAnnotation] == accesskey.DisabledByParent
		}},
		{"enabled", func(k *v1.OwnedAccessKey) { k.Spec.Disabled = false }, func(c *v1.OwnedAccessKey) bool { return !c.Spec.Disabled }},
		{"shorter life", func(k *v1.OwnedAccessKey) { k.Spec.TTL = 60 }, func(c *v1.OwnedAccessKey) bool { return c.Spec.TTL <= 60 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := store.Modify(ctx, parent.Name, func(k *v1.OwnedAccessKey) error { tc.change(k); return nil }); err != nil {
				t.Fatal(err)
			}
			if c := mustGet(t, child.Name); !tc.check(c) {
				t.Errorf("child after the parent's change: %+v %v", c.Spec, c.Annotations)
			}
		})
	}
	// A writer of the child itself cannot make it diverge: it follows its parent again.
	if _, err := store.Modify(ctx, child.Name, func(k *v1.OwnedAccessKey) error {
		k.Spec.Groups, k.Spec.TTL, k.Spec.DisplayName = []string{"system:masters"}, 0, "mine"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, child.Name); !slices.Equal(c.Spec.Groups, []string{"ops"}) || c.Spec.TTL > 60 || c.Spec.TTL <= 0 || c.Spec.DisplayName != "mine" {
		t.Errorf("child after its own edit: %+v; want the parent's groups and end, its own display name", c.Spec)
	}
	if err := errors.Join(store.SetDisabled(ctx, parent.Name, true), store.SetDisabled(ctx, child.Name, false)); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, child.Name); !c.Spec.Disabled {
		t.Error("a child was enabled while its parent is disabled")
	}
}

// Deleting a parent deletes its children, also when a login evicts it; deleting a child leaves
// the parent, and the index holds neither afterwards.
func TestDeletingParentDeletesChildren(t *testing.T) {
	ctx := context.Background()
	parent, child := sessionWithChild(t, "idp:bob")
	events, _ := watchInBackground(t, store, parent.ResourceVersion, "cli-")
	if err := store.Delete(ctx, parent.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, child.Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("child after its parent's deletion: %v, want ErrNotFound", err)
	}
	if indexed(t, parent.Name, child.Name) {
		t.Error("the index still holds the deleted child")
	}
	for ev := next(t, events); ev.Key.Name != child.Name || ev.Type != "DELETED"; ev = next(t, events) {
	}

	parent, child = sessionWithChild(t, "idp:bob2")
	if err := store.Delete(ctx, child.Name); err != nil {
		t.Fatal(err)
	}
	if mustGet(t, parent.Name); indexed(t, parent.Name, child.Name) {
		t.Error("the index still holds the deleted child")
	}

	// A user's login that evicts the oldest session deletes that session's children; a child's
	// own creation never evicts its parent.
	user := unique("idp-carol")
	parent, child = sessionWithChild(t, user)
	q := func(k *v1.OwnedAccessKey) Quota {
		q := PerOwner(k, 2, time.Now())
		q.EvictOldest = true
		return q
	}
	second := key(unique("cli"), v1.OwnedAccessKeySpec{User: user, Type: v1.AccessKeyTypeLogin, Parent: parent.Name})
	if _, _, evicted, err := store.CreateWithinQuota(ctx, second, q(second)); err != nil || slices.Contains(evicted, parent.Name) {
		t.Fatalf("a second child: evicted %v, %v; want its parent kept", evicted, err)
	}
	login := key(unique("login"), v1.OwnedAccessKeySpec{User: user, Type: v1.AccessKeyTypeLogin, TTL: 60})
	if _, _, evicted, err := store.CreateWithinQuota(ctx, login, q(login)); err != nil || !slices.Contains(evicted, parent.Name) {
		t.Fatalf("a login past the bound evicted %v, %v; want the oldest, the session", evicted, err)
	}
	for _, n := range []string{child.Name, second.Name} {
		if _, err := store.Get(ctx, n); !errors.Is(err, ErrNotFound) {
			t.Errorf("child %s of the evicted session: %v, want ErrNotFound", n, err)
		}
	}
}

// A child names a parent that exists and is no child itself, and keeps it for life.
func TestChildRefusals(t *testing.T) {
	ctx := context.Background()
	parent, child := sessionWithChild(t, "idp:dave")
	for name, tc := range map[string]struct {
		k    *v1.OwnedAccessKey
		want error
	}{
		"a parent that does not exist": {key(unique("cli"), v1.OwnedAccessKeySpec{User: "idp:dave", Type: v1.AccessKeyTypeLogin, Parent: unique("gone")}), ErrParent},
		"a child as parent":            {key(unique("cli"), v1.OwnedAccessKeySpec{User: "idp:dave", Type: v1.AccessKeyTypeLogin, Parent: child.Name}), ErrParent},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := store.Create(ctx, tc.k); !errors.Is(err, tc.want) {
				t.Errorf("Create: %v, want %v", err, tc.want)
			}
			if _, err := store.Get(ctx, tc.k.Name); !errors.Is(err, ErrNotFound) {
				t.Errorf("the refused key exists: %v", err)
			}
		})
	}
	for name, change := range map[string]func(*v1.OwnedAccessKey){
		"clear the parent": func(k *v1.OwnedAccessKey) { k.Spec.Parent = "" },
		"another parent":   func(k *v1.OwnedAccessKey) { k.Spec.Parent = parent.Name + "x" },
		"another type":     func(k *v1.OwnedAccessKey) { k.Spec.Type = v1.AccessKeyTypeUser },
		"make a parent itself": func(k *v1.OwnedAccessKey) {
			k.Name = parent.Name
			k.ResourceVersion = parent.ResourceVersion
			k.Spec.Parent = child.Name
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := mustGet(t, child.Name)
			change(k)
			if _, err := store.Update(ctx, k); !errors.Is(err, ErrInvalid) {
				t.Errorf("Update: %v, want ErrInvalid", err)
			}
		})
	}
}

// Whatever the interleaving of a session's disabling or deletion with its children's
// creation, no child stays enabled after the disabling, nor outlives the deletion.
func TestFamilyUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	for range 10 {
		parent, _ := sessionWithChild(t, "idp:erin")
		made := raceChildren(t, parent.Name, func() error { return store.SetDisabled(ctx, parent.Name, true) })
		for _, n := range made {
			if k := mustGet(t, n); !k.Spec.Disabled {
				t.Errorf("child %s is enabled after its parent was disabled", n)
			}
		}
		made = raceChildren(t, parent.Name, func() error { return store.Delete(ctx, parent.Name) })
		for _, n := range made {
			if k, err := store.Get(ctx, n); !errors.Is(err, ErrNotFound) {
				t.Errorf("child %s outlived its parent's deletion: %+v, %v", n, k, err)
			}
		}
	}
}

// raceChildren creates children of parent while change runs, and returns the children made
// (those refused because the parent was gone, ErrParent, are not).
func raceChildren(t *testing.T, parent string, change func() error) []string {
	t.Helper()
	var wg sync.WaitGroup
	made := make([]string, 4)
	for i := range made {
		wg.Go(func() {
			_, k, err := store.CreateObject(context.Background(), key(unique("cli"), v1.OwnedAccessKeySpec{User: "idp:erin", Type: v1.AccessKeyTypeLogin, Parent: parent}))
			switch {
			case err == nil:
				made[i] = k.Name
			case !errors.Is(err, ErrParent):
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if err := change(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	return slices.DeleteFunc(made, func(n string) bool { return n == "" })
}
