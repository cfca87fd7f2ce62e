package auth

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedis is the package's test Redis (a Cluster with KEYGATE_TEST_REDIS=cluster), set by the
// external tests' TestMain (export_test.go).
var testRedis redis.UniversalClient

// keysLike lists the keys matching pattern, on every master of a Cluster.
func keysLike(ctx context.Context, pattern string) []string {
	c, ok := testRedis.(*redis.ClusterClient)
	if !ok {
		return testRedis.Keys(ctx, pattern).Val()
	}
	var mu sync.Mutex
	var out []string
	_ = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks := m.Keys(ctx, pattern).Val()
		mu.Lock()
		defer mu.Unlock()
		out = append(out, ks...)
		return nil
	})
	return out
}

var prefixN atomic.Int64

// testStore is a LimitStore of its own in the test Redis (a prefix no other test uses), on clock
// now (nil: Redis's).
func testStore(t *testing.T, now func() time.Time) LimitStore {
	t.Helper()
	if testRedis == nil {
		t.Fatal("no test Redis: TestMain did not set it")
	}
	return LimitStore{Redis: testRedis, Now: now, Prefix: fmt.Sprintf("keygate:{loginlimits-test-%d-%d}:", time.Now().UnixNano(), prefixN.Add(1))}
}

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

// try admits an attempt of user from addr and, if admitted, releases it as failed or not.
func try(t *testing.T, l *limiter, user, addr string, failed bool) (admitted bool, wait time.Duration, by string) {
	t.Helper()
	release, wait, by, err := l.admit(context.Background(), user, addr)
	if err != nil {
		t.Fatal(err)
	}
	if release == nil {
		return false, wait, by
	}
	if err := release(failed); err != nil {
		t.Fatal(err)
	}
	return true, 0, ""
}

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
		{"part of a wait is not enough", steps(fails(3, "alice", "a"),
			[]step{{advance: 4 * time.Second, user: "alice", addr: "a", want: limitClient, wait: 6 * time.Second}})},
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
			l := newLimiter(testStore(t, clk.now), client, address, user)
			for i, st := range tc.steps {
				clk.t = clk.t.Add(st.advance)
				admitted, wait, by := try(t, l, st.user, st.addr, st.fail)
				if by != st.want || admitted != (st.want == "") {
					t.Fatalf("step %d (%s from %s): admitted %v, refused by %q; want refused by %q", i, st.user, st.addr, admitted, by, st.want)
				}
				if st.wait != 0 && wait != st.wait {
					t.Errorf("step %d: wait %v, want %v", i, wait, st.wait)
				}
			}
		})
	}
}

// The limits are in Redis, so every keystore replica counts the same failures: an attacker who
// spreads guesses over the replicas behind a balancer gets no more than from one.
func TestLimitsHoldAcrossReplicas(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	store := testStore(t, clk.now)
	replicas := []*limiter{newLimiter(store, DefaultClientLimit, DefaultAddressLimit, DefaultUserLimit), newLimiter(store, DefaultClientLimit, DefaultAddressLimit, DefaultUserLimit)}
	admitted := 0
	for i := range 4 * DefaultClientLimit.Burst {
		if ok, _, _ := try(t, replicas[i%2], "alice", "attacker", true); ok {
			admitted++
		}
	}
	if admitted != DefaultClientLimit.Burst {
		t.Errorf("%d guesses over two replicas were admitted, want %d: the client limit of one", admitted, DefaultClientLimit.Burst)
	}
}

// With the default limits, one client failing for a user as fast as it is let, for six hours
// (the buckets reach their steady state within minutes), never reaches the user's ceiling: a client with no failures of its own logs in at every
// moment. That is what makes the ceiling safe to have.
func TestOneClientNeverLocksTheUserOut(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLimiter(testStore(t, clk.now), DefaultClientLimit, DefaultAddressLimit, DefaultUserLimit)
	tries := 0
	const hours = 6
	for end := clk.t.Add(hours * time.Hour); clk.t.Before(end); {
		ok, wait, by := try(t, l, "alice", "attacker", true)
		switch {
		case ok:
			tries++
			clk.t = clk.t.Add(time.Millisecond)
		case by != limitClient:
			t.Fatalf("after %d tries the attacker was refused by the %s limit, want the client limit", tries, by)
		default:
			clk.t = clk.t.Add(wait) // as soon as it is let
		}
		// alice, from an address with no failures (a success costs nothing).
		if ok, wait, by := try(t, l, "alice", "home", false); !ok {
			t.Fatalf("after %d tries alice cannot log in from home: the %s limit, for %v", tries, by, wait)
		}
	}
	// 5 at once, then one every 12 s.
	if want := DefaultClientLimit.Burst + hours*3600/12; tries > want || tries < want-1 {
		t.Errorf("the attacker had %d tries in %d hours, want %d", tries, hours, want)
	}
}

// Redis holds little: successes leave nothing behind, a bucket that has refilled goes at the
// next attempt that ends in it, and every bucket expires once it has refilled and no attempt of
// it can still run.
func TestLimiterLeavesLittleInRedis(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	store := testStore(t, clk.now)
	client := Limit{Burst: 3, Every: 20 * time.Second}
	l := newLimiter(store, client, Limit{Burst: 1000, Every: 60 * time.Millisecond}, Limit{Burst: 4, Every: 15 * time.Second})
	ctx := context.Background()
	buckets := func() []string {
		return keysLike(ctx, store.Prefix+"*")
	}
	for i := range 10 {
		try(t, l, fmt.Sprint("ok-", i), "192.0.2.1", false)
	}
	if b := buckets(); len(b) != 0 {
		t.Errorf("after successes: buckets %q, want none", b)
	}
	try(t, l, "fails", "192.0.2.1", true)
	if b := buckets(); len(b) != 3 {
		t.Fatalf("after a failure: buckets %q, want the client's, the address's and the user's", b)
	}
	ttl := testRedis.PTTL(ctx, store.Prefix+"client:fails 192.0.2.1").Val()
	if most := client.Every + attemptTimeout; ttl <= 0 || ttl > most {
		t.Errorf("the client bucket expires in %v, want at most %v (one token to refill, and an attempt's timeout)", ttl, most)
	}
	// A minute later the buckets have refilled: the next success in them takes them away.
	clk.t = clk.t.Add(time.Minute)
	try(t, l, "fails", "192.0.2.1", false)
	if b := buckets(); len(b) != 0 {
		t.Errorf("after a success in refilled buckets: %q, want none", b)
	}
}

// Attempts still running hold their tokens, so that a burst of parallel guesses cannot all
// pass before the first failure is counted; an attempt whose replica died (never released)
// gives its token back after attemptTimeout.
func TestRunningAttemptsHoldTheirTokens(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLimiter(testStore(t, clk.now), Limit{Burst: 2, Every: time.Minute}, Limit{Burst: 1000, Every: time.Millisecond}, Limit{Burst: 3, Every: time.Second})
	ctx := context.Background()
	var running []func(bool) error
	for range 2 {
		release, wait, _, err := l.admit(ctx, "alice", "192.0.2.1")
		if err != nil || release == nil {
			t.Fatalf("admit: refused for %v, %v", wait, err)
		}
		running = append(running, release)
	}
	if ok, _, by := try(t, l, "alice", "192.0.2.1", true); ok || by != limitClient {
		t.Fatalf("a third guess while two run: admitted %v (by %q), want refused by the client limit", ok, by)
	}
	if err := running[0](true); err != nil {
		t.Fatal(err)
	}
	// The second never ends: its replica died. Its token comes back after the timeout only.
	clk.t = clk.t.Add(attemptTimeout - time.Second)
	if ok, _, _ := try(t, l, "alice", "192.0.2.1", true); ok {
		t.Error("admitted while the dead replica's attempt still holds its token")
	}
	clk.t = clk.t.Add(time.Second)
	if ok, wait, by := try(t, l, "alice", "192.0.2.1", true); !ok {
		t.Errorf("after the attempt's timeout: refused by %s for %v, want admitted", by, wait)
	}
}

// On Redis's own clock (production: no Now) the buckets work the same.
func TestLimiterOnRedisClock(t *testing.T) {
	l := newLimiter(testStore(t, nil), Limit{Burst: 1, Every: time.Hour}, Limit{Burst: 10, Every: time.Second}, Limit{Burst: 2, Every: time.Second})
	try(t, l, "alice", "192.0.2.1", true)
	ok, wait, by := try(t, l, "alice", "192.0.2.1", true)
	if ok || by != limitClient || wait <= 59*time.Minute || wait > time.Hour {
		t.Errorf("the second guess: admitted %v, refused by %q for %v; want refused by the client limit for about an hour", ok, by, wait)
	}
}

// A Redis that cannot answer refuses the attempt with an error: never a try that is not
// counted.
func TestLimiterFailsClosed(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()
	l := newLimiter(LimitStore{Redis: down}, DefaultClientLimit, DefaultAddressLimit, DefaultUserLimit)
	release, _, _, err := l.admit(context.Background(), "alice", "192.0.2.1")
	if err == nil || release != nil {
		t.Errorf("admit with Redis down: release %v, error %v; want an error and no attempt", release != nil, err)
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
