package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// clientFrom is an HTTP client of the edge whose connections come from the loopback address
// ip: Envoy appends the peer's address to X-Forwarded-For, so keystore sees ip as the client.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	tr := client.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr.DialContext = d.DialContext
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// loginFrom posts a password login through the edge with c.
func loginFrom(t *testing.T, c *http.Client, username, password string) (*http.Response, []byte) {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req, err := http.NewRequest(http.MethodPost, platform.EdgeURL+"/auth/password/login", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentJSON)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Through the real Envoy: an attacker failing for alice from one address is slowed (429 with
// Retry-After), even with her right password, while alice logs in from another address.
func TestLoginLimitSlowsTheAttackerNotTheUser(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, password := unique("limited"), "pw-"+randomHex(t, 12)
	if _, err := platform.RunKeystore(ctx, strings.NewReader(password+"\n"), "create-user", alice, "--password-stdin", "--bcrypt-cost", "4"); err != nil {
		t.Fatal(err)
	}
	attacker, home := clientFrom(t, "127.0.0.77"), clientFrom(t, "127.0.0.78")

	for i := range 5 { // the client limit's burst
		if resp, body := loginFrom(t, attacker, alice, "guess-"+strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: HTTP %d %s, want 401", i, resp.StatusCode, body)
		}
	}
	for _, pw := range []string{"guess-6", password} {
		resp, body := loginFrom(t, attacker, alice, pw)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the attacker after 5 failures: HTTP %d %s, want 429", resp.StatusCode, body)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("429 with Retry-After %q, want a number of seconds", resp.Header.Get("Retry-After"))
		}
	}
	if resp, body := loginFrom(t, home, alice, password); resp.StatusCode != http.StatusOK {
		t.Errorf("alice from her own address while the attacker is slowed: HTTP %d %s, want 200", resp.StatusCode, body)
	}
}

// keystore serve rehashes a password made at another cost at the next login: a user made at
// cost 10 has the server's cost (12, the default) afterwards, and logs in again.
func TestLoginRehashesAtTheServersCost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	user, password := unique("rehash"), "pw-"+randomHex(t, 12)
	if _, err := platform.RunKeystore(ctx, strings.NewReader(password+"\n"), "create-user", user, "--password-stdin", "--bcrypt-cost", "10"); err != nil {
		t.Fatal(err)
	}
	if got := storedHashCost(t, ctx, user); got != 10 {
		t.Fatalf("created at cost %d, want 10", got)
	}
	c := clientFrom(t, "127.0.0.79")
	for range 2 {
		if resp, body := loginFrom(t, c, user, password); resp.StatusCode != http.StatusOK {
			t.Fatalf("login: HTTP %d %s", resp.StatusCode, body)
		}
		if got := storedHashCost(t, ctx, user); got != 12 {
			t.Errorf("after a login the hash has cost %d, want the server's 12", got)
		}
	}
}

// storedHashCost is the bcrypt cost of the hash in user's record in Redis.
func storedHashCost(t *testing.T, ctx context.Context, user string) int {
	t.Helper()
	rdb := redisClient(t)
	data, err := rdb.Get(ctx, "keygate:user:{"+user+"}").Bytes()
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
