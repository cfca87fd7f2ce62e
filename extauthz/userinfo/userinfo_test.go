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

// fakeUsers is a user store whose change stream the test drives: send on events delivers a
// change, and a value on breaks ends the current Watch with that error.
type fakeUsers struct {
	mu     sync.Mutex
	users  map[string]users.User
	err    error
	reads  int
	onRead func() // runs inside Get, before it answers
	events chan users.Event
	acks   chan struct{}
	breaks chan error
}

func newFake(us ...users.User) *fakeUsers {
	f := &fakeUsers{users: map[string]users.User{}, events: make(chan users.Event), acks: make(chan struct{}), breaks: make(chan error)}
	for _, u := range us {
		f.users[u.Name] = u
	}
	return f
}

func (f *fakeUsers) Get(ctx context.Context, name string) (*users.User, error) {
	f.mu.Lock()
	f.reads++
	u, ok := f.users[name]
	err, onRead := f.err, f.onRead
	f.mu.Unlock()
	if onRead != nil {
		onRead()
	}
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, users.ErrNotFound
	}
	return &u, nil
}

func (f *fakeUsers) CurrentVersion(context.Context) (string, error) { return "0", nil }

func (f *fakeUsers) Watch(ctx context.Context, _ string, handle func(users.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.breaks:
			return err
		case ev := <-f.events:
			err := handle(ev)
			f.acks <- struct{}{}
			if err != nil {
				return err
			}
		}
	}
}

// change delivers ev and returns once the directory has handled it.
func (f *fakeUsers) change(ev users.Event) {
	f.events <- ev
	<-f.acks
}

func (f *fakeUsers) set(u users.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[u.Name] = u
}

func (f *fakeUsers) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// running starts d.Run until the test ends and waits until it is live.
func running(t *testing.T, d *Directory) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitLive(t, d, true)
}

func waitLive(t *testing.T, d *Directory, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for d.Live() != want {
		if time.Now().After(deadline) {
			t.Fatalf("directory live = %v, want %v", d.Live(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func lookup(t *testing.T, d *Directory, name string) Info {
	t.Helper()
	info, err := d.Lookup(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestLookup(t *testing.T) {
	tests := map[string]struct {
		users []users.User
		name  string
		want  Info
	}{
		"known user with groups": {
			users: []users.User{{Name: "alice", UID: "u1", Groups: []string{"dev", "ops"}}},
			name:  "alice",
			want:  Info{Known: true, UID: "u1", Groups: []string{"dev", "ops"}},
		},
		"disabled user": {
			users: []users.User{{Name: "bob", UID: "u2", Disabled: true, Groups: []string{"dev"}}},
			name:  "bob",
			want:  Info{Known: true, UID: "u2", Disabled: true, Groups: []string{"dev"}},
		},
		"unknown user (external identity)": {
			users: []users.User{{Name: "alice"}},
			name:  "carol",
			want:  Info{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := lookup(t, New(newFake(tc.users...), Options{}, nil), tc.name)
			if got.Known != tc.want.Known || got.UID != tc.want.UID || got.Disabled != tc.want.Disabled || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.name, got, tc.want)
			}
		})
	}
}

// While the stream is followed, answers (including "unknown") come from memory until an event
// names the user: the next lookup then reads the change.
func TestEventDropsTheUser(t *testing.T) {
	src := newFake(users.User{Name: "alice", UID: "u1", Groups: []string{"dev"}})
	d := New(src, Options{}, nil)
	running(t, d)
	for range 3 {
		lookup(t, d, "alice")
		lookup(t, d, "nobody")
	}
	if n := src.readCount(); n != 2 {
		t.Errorf("store read %d times, want 2 (one per user)", n)
	}
	src.set(users.User{Name: "alice", UID: "u1"})
	if got := lookup(t, d, "alice"); len(got.Groups) != 1 {
		t.Fatalf("before the event: %+v, want the cached answer", got)
	}
	src.change(users.Event{Type: users.EventModified, Name: "alice"})
	if got := lookup(t, d, "alice"); len(got.Groups) != 0 {
		t.Errorf("after the event: groups %v, want none", got.Groups)
	}
	src.set(users.User{Name: "nobody", UID: "u9"})
	src.change(users.Event{Type: users.EventAdded, Name: "nobody"})
	if got := lookup(t, d, "nobody"); !got.Known || got.UID != "u9" {
		t.Errorf("a user created after \"unknown\" was cached: %+v", got)
	}
}

// Not following the stream, the directory reads the store on every lookup: nothing would tell it
// of a change.
func TestNotLiveReadsEveryTime(t *testing.T) {
	src := newFake(users.User{Name: "alice"})
	d := New(src, Options{}, nil)
	for range 3 {
		lookup(t, d, "alice")
	}
	if n := src.readCount(); n != 3 {
		t.Errorf("store read %d times without the stream, want 3", n)
	}
}

// A broken stream drops every answer; lookups read the store until it is followed again.
func TestBrokenStreamDropsEverything(t *testing.T) {
	src := newFake(users.User{Name: "alice", Groups: []string{"dev"}})
	d := New(src, Options{MinBackoff: time.Hour}, nil)
	running(t, d)
	lookup(t, d, "alice")
	src.set(users.User{Name: "alice"})
	src.breaks <- users.ErrExpired
	waitLive(t, d, false)
	if got := lookup(t, d, "alice"); len(got.Groups) != 0 {
		t.Errorf("after the stream broke: %+v, want the store's answer", got)
	}
}

// A lookup that raced with a change to its user does not keep what it read.
func TestRacingLookupIsNotCached(t *testing.T) {
	src := newFake(users.User{Name: "alice", Groups: []string{"dev"}})
	d := New(src, Options{}, nil)
	running(t, d)
	var once sync.Once
	src.onRead = func() {
		once.Do(func() { src.change(users.Event{Type: users.EventModified, Name: "alice"}) })
	}
	lookup(t, d, "alice")
	src.mu.Lock()
	src.onRead = nil
	src.mu.Unlock()
	src.set(users.User{Name: "alice"})
	if got := lookup(t, d, "alice"); len(got.Groups) != 0 {
		t.Errorf("a read that raced with a change was cached: %+v", got)
	}
}

// TTL bounds an answer's age even when no event comes (a stalled stream, a lost event).
func TestTTLIsTheSafetyNet(t *testing.T) {
	src := newFake(users.User{Name: "alice"})
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	d := New(src, Options{TTL: 30 * time.Second, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}, nil)
	running(t, d)
	lookup(t, d, "alice")
	src.set(users.User{Name: "alice", Disabled: true})
	if lookup(t, d, "alice").Disabled {
		t.Fatal("read again before the TTL without an event")
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	if !lookup(t, d, "alice").Disabled {
		t.Error("after the TTL: want the user disabled")
	}
}

func TestStoreErrorsAreReturnedAndNotCached(t *testing.T) {
	src := newFake()
	src.err = errors.New("redis down")
	d := New(src, Options{}, nil)
	running(t, d)
	if _, err := d.Lookup(context.Background(), "alice"); err == nil {
		t.Fatal("store error not returned")
	}
	src.mu.Lock()
	src.err = nil
	src.users["alice"] = users.User{Name: "alice", Groups: []string{"dev"}}
	src.mu.Unlock()
	if info := lookup(t, d, "alice"); !info.Known {
		t.Errorf("after the store recovered: %+v", info)
	}
}

func TestCacheOff(t *testing.T) {
	src := newFake(users.User{Name: "alice"})
	d := New(src, Options{Size: -1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	for range 3 {
		lookup(t, d, "alice")
	}
	if n := src.readCount(); n != 3 {
		t.Errorf("store read %d times with the cache off, want 3", n)
	}
}
