package userinfo

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/users"
)

type fakeUsers struct {
	mu    sync.Mutex
	users map[string]users.User
	err   error
	reads int
}

func (f *fakeUsers) Get(ctx context.Context, name string) (*users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	u, ok := f.users[name]
	if !ok {
		return nil, users.ErrNotFound
	}
	return &u, nil
}

func (f *fakeUsers) set(u users.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[u.Name] = u
}

func TestLookup(t *testing.T) {
	tests := map[string]struct {
		users []users.User
		name  string
		want  Info
	}{
		"known user with groups": {
			users: []users.User{{Name: "alice", Groups: []string{"dev", "ops"}}},
			name:  "alice",
			want:  Info{Known: true, Groups: []string{"dev", "ops"}},
		},
		"disabled user": {
			users: []users.User{{Name: "bob", Disabled: true, Groups: []string{"dev"}}},
			name:  "bob",
			want:  Info{Known: true, Disabled: true, Groups: []string{"dev"}},
		},
		"unknown user (external identity)": {
			users: []users.User{{Name: "alice"}},
			name:  "carol",
			want:  Info{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := &fakeUsers{users: map[string]users.User{}}
			for _, u := range tc.users {
				src.set(u)
			}
			got, err := New(src, Options{}).Lookup(context.Background(), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Known != tc.want.Known || got.Disabled != tc.want.Disabled || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.name, got, tc.want)
			}
		})
	}
}

// Answers, including "unknown", are reused for TTL and then read again, so that a change to a
// user reaches the edge within TTL.
func TestCachedForTTL(t *testing.T) {
	src := &fakeUsers{users: map[string]users.User{}}
	src.set(users.User{Name: "alice", Groups: []string{"dev"}})
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	d := New(src, Options{TTL: 30 * time.Second, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	ctx := context.Background()
	for range 3 {
		if _, err := d.Lookup(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Lookup(ctx, "nobody"); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads != 2 {
		t.Errorf("store read %d times, want 2 (one per user)", src.reads)
	}
	src.set(users.User{Name: "alice", Disabled: true})
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	info, err := d.Lookup(ctx, "alice")
	if err != nil || !info.Disabled {
		t.Errorf("after the TTL: %+v, %v; want the user disabled", info, err)
	}
}

func TestStoreErrorsAreReturnedAndNotCached(t *testing.T) {
	src := &fakeUsers{users: map[string]users.User{}, err: errors.New("redis down")}
	d := New(src, Options{})
	if _, err := d.Lookup(context.Background(), "alice"); err == nil {
		t.Fatal("store error not returned")
	}
	src.mu.Lock()
	src.err = nil
	src.users["alice"] = users.User{Name: "alice", Groups: []string{"dev"}}
	src.mu.Unlock()
	info, err := d.Lookup(context.Background(), "alice")
	if err != nil || !info.Known {
		t.Errorf("after the store recovered: %+v, %v", info, err)
	}
}

func TestCacheOff(t *testing.T) {
	src := &fakeUsers{users: map[string]users.User{"alice": {Name: "alice"}}}
	d := New(src, Options{Size: -1})
	for range 3 {
		if _, err := d.Lookup(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads != 3 {
		t.Errorf("store read %d times with the cache off, want 3", src.reads)
	}
}
