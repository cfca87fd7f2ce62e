package users

import (
	"context"
	"errors"
	"testing"
)

// A user created through the management API has no password: a login with any password is
// refused, as for an unknown user, until set-password gives them one.
func TestCreateWithoutPassword(t *testing.T) {
	ctx := context.Background()
	name := unique("nopass")
	u, err := users.CreateWithoutPassword(ctx, User{Name: name, Groups: []string{"dev"}})
	if err != nil {
		t.Fatal(err)
	}
	if u.UID == "" || u.Revision != 1 {
		t.Errorf("created user: uid %q, revision %d; want a UID and revision 1", u.UID, u.Revision)
	}
	for _, p := range []string{"", password} {
		if _, err := users.Authenticate(ctx, name, p); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q) before set-password = %v, want ErrInvalidCredentials", p, err)
		}
	}
	if err := users.SetPassword(ctx, name, password); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate(ctx, name, password); err != nil {
		t.Errorf("Authenticate after set-password: %v", err)
	}
}

// Every write counts one revision, so the management API can refuse an update or delete made
// from a stale read.
func TestRevisionAndDeleteIf(t *testing.T) {
	ctx := context.Background()
	name := unique("rev")
	if _, err := users.CreateWithoutPassword(ctx, User{Name: name}); err != nil {
		t.Fatal(err)
	}
	u, err := users.Update(ctx, name, func(u *User) error { u.Email = "a@example.com"; u.Revision = 99; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if u.Revision != 2 {
		t.Errorf("revision after one update = %d, want 2 (a caller's value is ignored)", u.Revision)
	}
	stale := func(u *User) error {
		if u.Revision != 1 {
			return ErrConflict
		}
		return nil
	}
	if _, err := users.DeleteIf(ctx, name, stale); !errors.Is(err, ErrConflict) {
		t.Errorf("DeleteIf with a stale revision = %v, want ErrConflict", err)
	}
	deleted, err := users.DeleteIf(ctx, name, func(*User) error { return nil })
	if err != nil || deleted.Email != "a@example.com" {
		t.Fatalf("DeleteIf = %+v, %v; want the deleted user", deleted, err)
	}
	if _, err := users.Get(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after DeleteIf = %v, want ErrNotFound", err)
	}
}
