package auth

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// The limiter must stay small: successes leave nothing behind, refilled buckets go, and a
// flood of failing names cannot grow a map past its bound.
func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(func() time.Time { return now }, time.Minute, 3, 1000)

	for i := range 10 {
		a, _ := l.admit(fmt.Sprint("ok-", i), "192.0.2.1")
		a.release(false)
	}
	if len(l.users.m) != 0 || len(l.addrs.m) != 0 {
		t.Errorf("after successes: %d user and %d address buckets, want none", len(l.users.m), len(l.addrs.m))
	}

	a, _ := l.admit("fails", "192.0.2.1")
	a.release(true)
	if len(l.users.m) != 1 {
		t.Fatalf("after a failure: %d user buckets, want 1", len(l.users.m))
	}
	// A window later the bucket has refilled; the next new key sweeps it away.
	now = now.Add(time.Minute)
	a, _ = l.admit("other", "192.0.2.1")
	a.release(true)
	if _, ok := l.users.m["fails"]; ok || len(l.users.m) != 1 {
		t.Errorf("after a window: user buckets %v, want only other", keysOf(l.users.m))
	}

	l.users.max = 5
	for i := range 50 {
		a, wait := l.admit(fmt.Sprint("spray-", i), "192.0.2.1")
		if a == nil {
			t.Fatalf("attempt %d refused for %v", i, wait)
		}
		a.release(true)
		if len(l.users.m) > l.users.max {
			t.Fatalf("%d user buckets, want at most %d", len(l.users.m), l.users.max)
		}
	}
}

func TestLimiterNeverEvictsRunningAttempts(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(func() time.Time { return now }, time.Minute, 1, 1000)
	l.users.max = 2
	running := []*attempt{}
	for i := range 2 {
		a, _ := l.admit(fmt.Sprint("running-", i), "192.0.2.1")
		running = append(running, a)
	}
	// The map is full of running attempts: it grows rather than forget one.
	a, _ := l.admit("third", "192.0.2.1")
	if len(l.users.m) != 3 {
		t.Errorf("%d user buckets, want 3", len(l.users.m))
	}
	a.release(true)
	for _, r := range running {
		r.release(true)
	}
	// Each failure was recorded where it belongs: one more try is refused.
	for i := range 2 {
		if a, _ := l.admit(fmt.Sprint("running-", i), "192.0.2.2"); a != nil {
			t.Errorf("running-%d: admitted after its one failure", i)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(func() time.Time { return now }, time.Minute, 10, 1000)
	for range 10 {
		a, _ := l.admit("u", "192.0.2.1")
		a.release(true)
	}
	if a, wait := l.admit("u", "192.0.2.1"); a != nil || wait <= 5*time.Second || wait > 6*time.Second {
		t.Errorf("admit after 10 failures = %v, %v; want a wait of 6 s (a minute / 10)", a, wait)
	}
	now = now.Add(6 * time.Second)
	if a, wait := l.admit("u", "192.0.2.1"); a == nil {
		t.Errorf("refused again after the wait (%v)", wait)
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
