package users

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Every write of a user appends one entry naming it, in order, and a follower from the version
// before the writes sees exactly those.
func TestEveryWriteIsAnEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := unique("evented")
	begun := time.Now()
	from, err := users.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, User{Name: name, Groups: []string{"dev"}}, password); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Update(ctx, name, func(u *User) error { u.Groups = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := users.SetPassword(ctx, name, password+"2"); err != nil {
		t.Fatal(err)
	}
	if err := users.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	want := []string{EventAdded, EventModified, EventModified, EventDeleted}
	var got []string
	errDone := errors.New("done")
	err = users.Watch(ctx, from, func(ev Event) error {
		if ev.Name == name { // other tests of the package write users concurrently
			got = append(got, ev.Type)
			// Redis runs on this machine: its clock is ours, give or take a second.
			if ev.At.Before(begun.Add(-time.Second)) || ev.At.After(time.Now().Add(time.Second)) {
				t.Errorf("%s event logged at %s, want Redis's time of the write (after %s)", ev.Type, ev.At, begun)
			}
		}
		if len(got) == len(want) {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("Watch: %v after %v", err, got)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// A failed write appends nothing: a follower is told of changes only.
func TestFailedWriteIsNoEvent(t *testing.T) {
	ctx := context.Background()
	before, err := users.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	missing := unique("missing")
	if err := users.Delete(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a missing user: %v", err)
	}
	if _, err := users.Update(ctx, missing, func(*User) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing user: %v", err)
	}
	entries, err := rdb.XRange(ctx, eventsKey, "("+before+"-0", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range entries {
		if m.Values["name"] == missing {
			t.Errorf("entry %s for a failed write: %v", m.ID, m.Values)
		}
	}
}

// A user deleted and created again under the same name is another user: another UID, which
// Update keeps.
func TestRecreatedUserHasNewUID(t *testing.T) {
	ctx := context.Background()
	name := unique("reborn")
	if err := users.Create(ctx, User{Name: name, UID: "chosen-by-caller"}, password); err != nil {
		t.Fatal(err)
	}
	first, err := users.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if first.UID == "" || first.UID == "chosen-by-caller" {
		t.Errorf("uid = %q, want one Create made", first.UID)
	}
	if _, err := users.Update(ctx, name, func(u *User) error { u.UID = "other"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("Update changing the uid: %v, want ErrInvalid", err)
	}
	if err := users.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := users.Create(ctx, User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	second, err := users.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if second.UID == "" || second.UID == first.UID {
		t.Errorf("uid after re-creation = %q, first was %q; want a new one", second.UID, first.UID)
	}
}
