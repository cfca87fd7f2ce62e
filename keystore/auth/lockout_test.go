package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/users"
)

// An attacker failing for alice from one address, as long as they like, slows only their own
// address: alice logs in from hers with the right password all along.
func TestAttackerDoesNotLockTheUserOut(t *testing.T) {
	f := newFixture(t, nil) // the default limits
	alice := newUser(t, "alice", false)
	const attacker, home = "203.0.113.66", "198.51.100.10"

	limited := 0
	for i := range 40 {
		w := f.login(alice, "guess "+strconv.Itoa(i), attacker)
		switch w.Code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q, want a number of seconds", w.Header().Get("Retry-After"))
			}
		default:
			t.Fatalf("guess %d: %d %s", i, w.Code, w.Body)
		}
		if i%10 == 9 {
			f.loginOK(t, alice, home)
		}
	}
	if limited != 40-5 {
		t.Errorf("%d of 40 guesses got 429, want all but the first 5", limited)
	}
	// The attacker's address is slowed for alice even with her right password.
	status(t, f.login(alice, password, attacker), http.StatusTooManyRequests)
	f.loginOK(t, alice, home)
}

// Guesses spread over two keystore replicas behind a balancer count as on one: the limits are
// in Redis, not in each replica's memory (where each would allow its own burst).
func TestGuessesSpreadOverReplicasAreLimitedAsOne(t *testing.T) {
	shared := auth.LimitStore{Redis: rdb, Prefix: limitPrefix()}
	var replicas []*fixture
	for range 2 {
		replicas = append(replicas, newFixture(t, func(o *auth.Options) { o.Limits = shared }))
	}
	alice := newUser(t, "alice", false)
	const attacker = "203.0.113.67"
	refused := 0
	for i := range 4 * auth.DefaultClientLimit.Burst {
		if w := replicas[i%2].login(alice, "guess "+strconv.Itoa(i), attacker); w.Code == http.StatusTooManyRequests {
			refused++
		} else if w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, w.Code, w.Body)
		}
	}
	if want := 3 * auth.DefaultClientLimit.Burst; refused != want {
		t.Errorf("%d of %d guesses over two replicas got 429, want %d: all but one replica's burst", refused, 4*auth.DefaultClientLimit.Burst, want)
	}
}

// storedCost is the cost of the bcrypt hash in name's record in Redis.
func storedCost(t *testing.T, name string) int {
	t.Helper()
	data, err := rdb.Get(context.Background(), "keygate:user:{"+name+"}").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		PasswordHash string `json:"passwordHash"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	cost, err := bcrypt.Cost([]byte(rec.PasswordHash))
	if err != nil {
		t.Fatal(err)
	}
	return cost
}

// A user created at cost 10 logs in to a server at cost 11: their hash is 11 afterwards, and
// the password still works.
func TestLoginRehashesAtTheServerCost(t *testing.T) {
	ctx := context.Background()
	name := unique("rehash")
	if err := users.New(rdb, users.Options{Cost: 10}).Create(ctx, users.User{Name: name}, password); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *auth.Options) { o.Users = users.New(rdb, users.Options{Cost: 11}) })
	if got := storedCost(t, name); got != 10 {
		t.Fatalf("created at cost %d, want 10", got)
	}
	f.loginOK(t, name, "192.0.2.150")
	if got := storedCost(t, name); got != 11 {
		t.Errorf("after the login the hash has cost %d, want the server's 11", got)
	}
	f.loginOK(t, name, "192.0.2.150")
}
