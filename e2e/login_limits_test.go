package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
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

// The attack: a client that reaches keystore's login endpoints directly (a pod beside it, were
// the NetworkPolicy missing) names a fresh address in X-Forwarded-For with every guess, to get
// a fresh allowance of failures each time. keystore believes the header only from the edge's
// client certificate, so the guesses are limited under the connection's own address; the same
// forged header sent with the edge's certificate is believed (the test can fail).
func TestLoginLimitIgnoresForgedForwardedFor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := unique("forwarded")
	if _, err := platform.RunKeystore(ctx, strings.NewReader("pw-"+randomHex(t, 12)+"\n"), "create-user", alice, "--password-stdin", "--bcrypt-cost", "4"); err != nil {
		t.Fatal(err)
	}
	edgeCert, err := tls.LoadX509KeyPair(filepath.Join(platform.PKIDir(), "edge-client.crt"), filepath.Join(platform.PKIDir(), "edge-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	direct := func(local string, certs []tls.Certificate) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
		tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	guess := func(c *http.Client, forwardedFor string, i int) int {
		data, _ := json.Marshal(map[string]string{"username": alice, "password": "guess-" + strconv.Itoa(i)})
		req, err := http.NewRequest(http.MethodPost, "https://"+platform.KeystoreAuthAddress()+"/password/login", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentJSON)
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("guess %d: %v", i, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	attacker := direct("127.0.0.79", nil)
	codes := map[int]int{}
	for i := range 8 { // the client limit's burst is 5
		codes[guess(attacker, "198.51.100."+strconv.Itoa(i+1), i)]++
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized] > 5 {
		t.Errorf("8 guesses without the edge's certificate, each naming a new address: %v, want at most 5 × 401 and then 429 (the header ignored)", codes)
	}

	// The same forged addresses with the edge's certificate, from another connection address:
	// each is believed, so each address has its own allowance (no 429).
	edge := direct("127.0.0.80", []tls.Certificate{edgeCert})
	for i := range 8 {
		if code := guess(edge, "203.0.113."+strconv.Itoa(i+1), i); code != http.StatusUnauthorized {
			t.Errorf("guess %d with the edge's certificate, a new address each: HTTP %d, want 401 (the header believed)", i, code)
		}
	}
	if v := keystoreCounter(t, "keygate_keystore_auth_forwarded_for_ignored_total"); v < 8 {
		t.Errorf("keygate_keystore_auth_forwarded_for_ignored_total = %v, want at least the 8 ignored headers", v)
	}
}

// keystoreCounter reads one unlabelled series from keystore's /metrics.
func keystoreCounter(t *testing.T, name string) float64 {
	t.Helper()
	for _, c := range platform.Components() {
		if c.Name != "keystore" {
			continue
		}
		resp, err := http.Get(c.MetricsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return f
			}
		}
		t.Fatalf("keystore's /metrics has no %s", name)
	}
	t.Fatal("keystore is not running")
	return 0
}
