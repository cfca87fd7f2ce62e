package users

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// storedCost is the bcrypt cost of the hash stored for name.
func storedCost(t *testing.T, name string) int {
	t.Helper()
	rec, err := users.getRecord(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := bcrypt.Cost([]byte(rec.PasswordHash))
	if err != nil {
		t.Fatal(err)
	}
	return cost
}

// A store whose cost was raised rehashes each user at their next successful login, and only
// then: a failed login knows no password to hash.
func TestLoginRehashesAtTheStoreCost(t *testing.T) {
	ctx := context.Background()
	raised := New(rdb, Options{Cost: bcrypt.MinCost + 1})
	for _, tc := range []struct {
		name     string
		password string
		wantCost int
	}{
		{"right password: rehashed", password, bcrypt.MinCost + 1},
		{"wrong password: kept", "not the password", bcrypt.MinCost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unique("rehash")
			if err := users.Create(ctx, User{Name: name}, password); err != nil {
				t.Fatal(err)
			}
			before, err := users.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			raised.Authenticate(ctx, name, tc.password)
			if got := storedCost(t, name); got != tc.wantCost {
				t.Errorf("stored cost %d, want %d", got, tc.wantCost)
			}
			after, err := raised.Authenticate(ctx, name, password)
			if err != nil {
				t.Fatalf("the password no longer works: %v", err)
			}
			// Nothing the API shows changed: no new revision, so no edit conflicts.
			if after.Revision != before.Revision {
				t.Errorf("revision %d, want %d as before", after.Revision, before.Revision)
			}
		})
	}
}

// A password changed between the check and the rehash is not overwritten by the old one.
func TestRehashLosesToANewPassword(t *testing.T) {
	ctx := context.Background()
	name := unique("rehash-race")
	if err := users.Create(ctx, User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	old, err := users.getRecord(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.SetPassword(ctx, name, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	New(rdb, Options{Cost: bcrypt.MinCost + 1}).rehashIfStale(ctx, name, old.PasswordHash, password)
	if _, err := users.Authenticate(ctx, name, "a brand new password"); err != nil {
		t.Errorf("the new password was overwritten: %v", err)
	}
}

// An unknown user's password is compared with a hash of the configured cost, whatever it is,
// so that unknown names take as long as users created at that cost.
func TestDummyHashHasTheStoreCost(t *testing.T) {
	for _, tc := range []struct {
		name string
		cost int
	}{{"minimum", bcrypt.MinCost}, {"raised", bcrypt.MinCost + 2}} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(rdb, Options{Cost: tc.cost})
			var compared []byte
			s.compare = func(hash, pw []byte) error {
				compared = hash
				return bcrypt.CompareHashAndPassword(hash, pw)
			}
			if _, err := s.Authenticate(context.Background(), unique("ghost"), password); err == nil {
				t.Fatal("an unknown user logged in")
			}
			if got, err := bcrypt.Cost(compared); err != nil || got != tc.cost || s.Cost() != tc.cost {
				t.Errorf("compared with a hash of cost %d (%v), store cost %d; want %d", got, err, s.Cost(), tc.cost)
			}
		})
	}
}
