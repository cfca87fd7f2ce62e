package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// loginResponse is the answer of POST /auth/password/login.
type loginResponse struct {
	AccessKey string `json:"accessKey"`
	Name      string `json:"name"`
	User      string `json:"user"`
	ExpiresAt string `json:"expiresAt"`
}

// login posts a username and password to the edge's public login endpoint.
func login(t *testing.T, username, password string) (*http.Response, []byte) {
	t.Helper()
	return send(t, "", http.MethodPost, "/auth/password/login", contentJSON, map[string]string{"username": username, "password": password})
}

// The whole life of a password login through the edge: a user made with the keystore command
// logs in, uses the key on the management API and on a cluster (as themselves), logs out, and
// the key is then refused everywhere. A wrong password gets the same 401 as an unknown user.
func TestPasswordLoginUseLogout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	user := unique("login")
	password := "pw-" + randomHex(t, 12)
	if _, err := platform.RunKeystore(ctx, strings.NewReader(password+"\n"), "create-user", user, "--password-stdin",
		"--groups", "e2e-devs", "--redis-address", platform.RedisAddr); err != nil {
		t.Fatal(err)
	}

	// Refusals first: they must not lock the user out of the login below (5 per user and address are allowed).
	resp, wrongBody := login(t, user, password+"-wrong")
	if resp.StatusCode != http.StatusUnauthorized || status(t, resp, wrongBody).Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("wrong password: HTTP %d, want 401 Unauthorized: %s", resp.StatusCode, wrongBody)
	}
	resp, unknownBody := login(t, unique("nobody"), password)
	if resp.StatusCode != http.StatusUnauthorized || string(unknownBody) != string(wrongBody) {
		t.Errorf("unknown user: HTTP %d %s; want the same 401 as a wrong password (%s)", resp.StatusCode, unknownBody, wrongBody)
	}
	if strings.Contains(string(wrongBody), password) {
		t.Errorf("the refusal shows the password: %s", wrongBody)
	}

	resp, body := login(t, user, password)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: HTTP %d: %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login response Cache-Control = %q, want no-store (it holds a key)", cc)
	}
	var lr loginResponse
	if err := json.Unmarshal(body, &lr); err != nil {
		t.Fatalf("login response: %v: %s", err, body)
	}
	if !strings.HasPrefix(lr.AccessKey, store.KeyPrefix) || lr.User != user || lr.Name == "" {
		t.Fatalf("login response = %s; want a generated key for %s", body, user)
	}
	if exp, err := time.Parse(time.RFC3339, lr.ExpiresAt); err != nil || !exp.After(time.Now()) {
		t.Errorf("expiresAt %q (%v), want a time in the future", lr.ExpiresAt, err)
	}

	// The management API: the user sees their login key, of type Login, without its key.
	resp, body = get(t, lr.AccessKey, accessKeysPath+"/"+lr.Name, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET own login key with it: HTTP %d: %s", resp.StatusCode, body)
	}
	if k := decodeAccessKey(t, body); k.Spec.Type != v1.AccessKeyTypeLogin || k.Spec.User != user || k.Spec.Key != "" || k.Spec.TTL == 0 {
		t.Errorf("login key as stored: %+v; want type Login for %s with a ttl and no key", k.Spec, user)
	}
	if err := keyWorks(t, lr.AccessKey); err != nil {
		t.Errorf("login key on the management API: %v", err)
	}
	// A cluster: the upstream sees the user and their groups.
	cfg := kubeconfig(t, lr.AccessKey)
	who := whoami(t, cfg, demo)
	if who.Username != user || !slices.Contains(who.Groups, "e2e-devs") {
		t.Errorf("the cluster sees %s %v, want %s with group e2e-devs", who.Username, who.Groups, user)
	}

	resp, body = send(t, lr.AccessKey, http.MethodPost, "/auth/logout", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: HTTP %d: %s", resp.StatusCode, body)
	}
	var s metav1.Status
	if err := json.Unmarshal(body, &s); err != nil || s.Status != metav1.StatusSuccess {
		t.Errorf("logout answer is not a Success Status (%v): %s", err, body)
	}
	// extauthz may hold the key in a cache that a deletion invalidates: allow it a moment.
	for _, path := range []string{accessKeysPath, "/kubernetes/cluster/demo/version"} {
		eventually(t, 5*time.Second, "logged-out key refused at "+path, func() error { return keyRefused(t, lr.AccessKey, path) })
	}
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "--raw", "/version"); err == nil || !strings.Contains(errOut, "Unauthorized") && !strings.Contains(errOut, "invalid access key") {
		t.Errorf("kubectl with the logged-out key: err %v, stderr %q; want Unauthorized", err, errOut)
	}
	// A second logout with it is 401 too: the key is gone.
	if resp, body := send(t, lr.AccessKey, http.MethodPost, "/auth/logout", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("second logout: HTTP %d, want 401: %s", resp.StatusCode, body)
	}

	// The same user can log in again, and gets a new key.
	resp, body = login(t, user, password)
	var again loginResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &again) != nil || again.AccessKey == lr.AccessKey || again.Name == lr.Name {
		t.Errorf("second login: HTTP %d %s; want a new key", resp.StatusCode, body)
	} else if err := keyWorks(t, again.AccessKey); err != nil {
		t.Errorf("key of the second login: %v", err)
	}
}

// Logout only ends login sessions: a key made another way (a CI job's) is refused with 403
// and keeps working.
func TestLogoutRefusesNonLoginKey(t *testing.T) {
	t.Parallel()
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: unique("ci"), Type: v1.AccessKeyTypeUser})
	resp, body := send(t, key, http.MethodPost, "/auth/logout", "", nil)
	if resp.StatusCode != http.StatusForbidden || status(t, resp, body).Reason != metav1.StatusReasonForbidden {
		t.Errorf("logout with a User key: HTTP %d, want 403: %s", resp.StatusCode, body)
	}
	if err := keyWorks(t, key); err != nil {
		t.Errorf("the User key after a refused logout: %v", err)
	}
}
