package auth

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// fakeClock is the limiter's clock in these tests: time moves only when a test says so.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// step is one login attempt in a limiter test: after advance, user (empty: a name that cannot
// exist) tries from addr. want is "" when it must be admitted (it then fails or succeeds as
// fail says), else the limit that must refuse it, with the wait when wait is set.
type step struct {
	advance    time.Duration
	user, addr string
	fail       bool
	want       string
	wait       time.Duration
}

// fails is n failed attempts of user from addr, all admitted.
func fails(n int, user, addr string) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = step{user: user, addr: addr, fail: true}
	}
	return out
}

func steps(parts ...[]step) []step { return slices.Concat(parts...) }

func TestLimiter(t *testing.T) {
	// Small limits, in the shape of the defaults: the user's ceiling above the client's.
	client, address, user := Limit{Burst: 3, Every: 10 * time.Second}, Limit{Burst: 6, Every: 5 * time.Second}, Limit{Burst: 8, Every: 2 * time.Second}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a failing client is slowed after its burst", steps(fails(3, "alice", "a"),
			[]step{{user: "alice", addr: "a", want: limitClient, wait: 10 * time.Second}})},
		{"the user still logs in from another address", steps(fails(3, "alice", "a"),
			[]step{{user: "alice", addr: "b"}})},
		{"another user from the failing address is not slowed", steps(fails(3, "alice", "a"),
			[]step{{user: "bob", addr: "a"}})},
		{"a try comes back after the wait", steps(fails(3, "alice", "a"),
			[]step{{advance: 10 * time.Second, user: "alice", addr: "a", fail: true}, {user: "alice", addr: "a", want: limitClient}})},
		{"an address spraying names is slowed", steps(fails(2, "u1", "a"), fails(2, "u2", "a"), fails(2, "u3", "a"),
			[]step{{user: "u4", addr: "a", want: limitAddress, wait: 5 * time.Second}, {user: "u4", addr: "b"}})},
		{"impossible names count against the address only", steps(fails(6, "", "a"),
			[]step{{user: "", addr: "a", want: limitAddress}, {user: "alice", addr: "b"}})},
		{"many addresses together reach the user's ceiling", steps(fails(3, "alice", "a"), fails(3, "alice", "b"), fails(2, "alice", "c"),
			[]step{{user: "alice", addr: "d", want: limitUser, wait: 2 * time.Second}, {user: "bob", addr: "d"}})},
		{"successes cost nothing", steps(
			[]step{{user: "alice", addr: "a"}, {user: "alice", addr: "a"}, {user: "alice", addr: "a"}, {user: "alice", addr: "a"}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_000_000, 0)}
			l := newLimiter(clk.now, client, address, user)
			for i, st := range tc.steps {
				clk.t = clk.t.Add(st.advance)
				a, wait, by := l.admit(st.user, st.addr)
				if by != st.want || (a == nil) != (st.want != "") {
					t.Fatalf("step %d (%s from %s): admitted %v, refused by %q; want refused by %q", i, st.user, st.addr, a != nil, by, st.want)
				}
				if st.wait != 0 && wait != st.wait {
					t.Errorf("step %d: wait %v, want %v", i, wait, st.wait)
				}
				if a != nil {
					a.release(st.fail)
				}
			}
		})
	}
}

// With the default limits, one client failing for a user as fast as it is let, for a whole
// day, never reaches the user's ceiling: a client with no failures of its own logs in at every
// moment. That is what makes the ceiling safe to have.
func TestOneClientNeverLocksTheUserOut(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLimiter(clk.now, DefaultClientLimit, DefaultAddressLimit, DefaultUserLimit)
	tries := 0
	for range 24 * 3600 {
		clk.t = clk.t.Add(time.Second)
		a, _, by := l.admit("alice", "attacker")
		if a != nil {
			tries++
			a.release(true)
		} else if by != limitClient {
			t.Fatalf("after %d tries the attacker was refused by the %s limit, want the client limit", tries, by)
		}
		if wait := l.users.wait("alice", clk.t); wait > 0 {
			t.Fatalf("after %d tries alice's ceiling is reached: another client would wait %v", tries, wait)
		}
	}
	// 5 at once, then one every 12 s.
	if want := DefaultClientLimit.Burst + 24*3600/12; tries > want {
		t.Errorf("the attacker had %d tries in a day, want at most %d", tries, want)
	}
}

// The limiter must stay small: successes leave nothing behind, refilled buckets go, and a
// flood of failing names cannot grow a map past its bound.
func TestLimiterMemoryIsBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLimiter(clk.now, Limit{3, 20 * time.Second}, Limit{1000, 60 * time.Millisecond}, Limit{4, 15 * time.Second})

	for i := range 10 {
		a, _, _ := l.admit(fmt.Sprint("ok-", i), "192.0.2.1")
		a.release(false)
	}
	if n := len(l.clients.m) + len(l.users.m) + len(l.addrs.m); n != 0 {
		t.Errorf("after successes: %d buckets, want none", n)
	}

	a, _, _ := l.admit("fails", "192.0.2.1")
	a.release(true)
	if len(l.users.m) != 1 || len(l.clients.m) != 1 {
		t.Fatalf("after a failure: %d user and %d client buckets, want 1 each", len(l.users.m), len(l.clients.m))
	}
	// A minute later the buckets have refilled; the next new key sweeps them away.
	clk.t = clk.t.Add(time.Minute)
	a, _, _ = l.admit("other", "192.0.2.1")
	a.release(true)
	if _, ok := l.users.m["fails"]; ok || len(l.users.m) != 1 || len(l.clients.m) != 1 {
		t.Errorf("after a minute: user buckets %v, client buckets %v, want only other's", keysOf(l.users.m), keysOf(l.clients.m))
	}

	l.users.max, l.clients.max = 5, 5
	for i := range 50 {
		a, wait, _ := l.admit(fmt.Sprint("spray-", i), "192.0.2.1")
		if a == nil {
			t.Fatalf("attempt %d refused for %v", i, wait)
		}
		a.release(true)
		if len(l.users.m) > l.users.max || len(l.clients.m) > l.clients.max {
			t.Fatalf("%d user and %d client buckets, want at most %d", len(l.users.m), len(l.clients.m), l.users.max)
		}
	}
}

func TestLimiterNeverEvictsRunningAttempts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLimiter(clk.now, Limit{1, time.Minute}, Limit{1000, time.Millisecond}, Limit{2, time.Second})
	l.users.max, l.clients.max = 2, 2
	running := []*attempt{}
	for i := range 2 {
		a, _, _ := l.admit(fmt.Sprint("running-", i), "192.0.2.1")
		running = append(running, a)
	}
	// The maps are full of running attempts: they grow rather than forget one.
	a, _, _ := l.admit("third", "192.0.2.1")
	if len(l.users.m) != 3 || len(l.clients.m) != 3 {
		t.Errorf("%d user and %d client buckets, want 3 each", len(l.users.m), len(l.clients.m))
	}
	a.release(true)
	for _, r := range running {
		r.release(true)
	}
	// Each failure was recorded where it belongs: one more try is refused.
	for i := range 2 {
		if a, _, _ := l.admit(fmt.Sprint("running-", i), "192.0.2.1"); a != nil {
			t.Errorf("running-%d: admitted after its one failure", i)
		}
	}
}

func TestClientAddress(t *testing.T) {
	for _, c := range []struct {
		xff       []string
		remote    string
		addr, key string
	}{
		{nil, "192.0.2.1:1234", "192.0.2.1", "192.0.2.1"},
		{[]string{"192.0.2.9"}, "10.0.0.1:1234", "192.0.2.9", "192.0.2.9"},
		// Envoy appends the peer: earlier entries are the client's, and may be forged.
		{[]string{"203.0.113.1, 192.0.2.9"}, "10.0.0.1:1234", "192.0.2.9", "192.0.2.9"},
		{[]string{"203.0.113.1", "198.51.100.2,192.0.2.9"}, "10.0.0.1:1234", "192.0.2.9", "192.0.2.9"},
		{[]string{"2001:db8::1"}, "10.0.0.1:1234", "2001:db8::1", "2001:db8::/64"},
		{[]string{"::ffff:192.0.2.9"}, "10.0.0.1:1234", "::ffff:192.0.2.9", "192.0.2.9"},
		// A last entry that is not an address: the connection's peer.
		{[]string{"192.0.2.9, unknown"}, "10.0.0.1:1234", "10.0.0.1", "10.0.0.1"},
		{nil, "[2001:db8:1:2::5]:443", "2001:db8:1:2::5", "2001:db8:1:2::/64"},
		{nil, "@", "unknown", "unknown"},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if addr, key := clientAddress(r); addr != c.addr || key != c.key {
			t.Errorf("X-Forwarded-For %q, RemoteAddr %q: %q, %q; want %q, %q", c.xff, c.remote, addr, key, c.addr, c.key)
		}
	}
}

func TestNameStem(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                          "alice",
		"Alice.Example@corp.io":          "alice-example-corp-io",
		"--a__b--":                       "a-b",
		"!!!":                            "user",
		"":                               "user",
		"ünï":                            "n",
		"a-" + string(make([]byte, 100)): "a",
	} {
		if got := nameStem(in); got != want {
			t.Errorf("nameStem(%q) = %q, want %q", in, got, want)
		}
	}
	long := nameStem("abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij")
	if len(long) > maxStemLength || long[len(long)-1] == '-' {
		t.Errorf("nameStem of a long name = %q (%d characters), want at most %d, no trailing '-'", long, len(long), maxStemLength)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
