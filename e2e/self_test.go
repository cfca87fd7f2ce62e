package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// "Who am I" through the edge, with kubectl, and the check Loft's CLI makes of a saved key.
func TestSelf(t *testing.T) {
	t.Parallel()
	user := unique("self")
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: user, Groups: []string{"dev"}, Type: v1.AccessKeyTypeUser})
	cfg := kubeconfig(t, key)
	self := filepath.Join(t.TempDir(), "self.yaml")
	if err := os.WriteFile(self, []byte("apiVersion: management.loft.sh/v1\nkind: Self\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := kubectlIn(t, cfg, nil, "create", "-f", self, "-o", "json")
	if err != nil {
		t.Fatalf("kubectl create -f self.yaml: %v\n%s", err, errOut)
	}
	var got v1.Self
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Status.Subject != user || got.Status.AccessKey != name || got.Status.AccessKeyType != v1.AccessKeyTypeUser {
		t.Errorf("self = %+v, want user %s and key %s", got.Status, user, name)
	}
	for _, g := range []string{"dev", "loft:user:" + user, "system:authenticated"} {
		if !strings.Contains(strings.Join(got.Status.Groups, ","), g) {
			t.Errorf("groups %v lack %q", got.Status.Groups, g)
		}
	}

	// Another user asks about this key by its value, as Loft's CLI checks a saved key.
	_, other := newKey(t, v1.OwnedAccessKeySpec{User: unique("other")})
	body, _ := json.Marshal(v1.Self{Spec: v1.SelfSpec{AccessKey: key}})
	resp, data := post(t, other, "/kubernetes/management/apis/management.loft.sh/v1/selves", body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("POST selves with spec.accessKey: HTTP %d %s", resp.StatusCode, data)
	}
	if strings.Contains(string(data), key) {
		t.Error("the response echoes the key")
	}
	got = v1.Self{}
	if err := json.Unmarshal(data, &got); err != nil || got.Status.Subject != user || got.Status.AccessKey != name {
		t.Errorf("self of the saved key = %+v (%v), want user %s", got.Status, err, user)
	}

	// A key that no longer works is refused, naming the field.
	body, _ = json.Marshal(v1.Self{Spec: v1.SelfSpec{AccessKey: "kgk_" + strings.Repeat("z", 43)}})
	resp, data = post(t, other, "/kubernetes/management/apis/management.loft.sh/v1/selves", body)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(data), "spec.accessKey") {
		t.Errorf("unknown key in spec.accessKey: HTTP %d %s, want 422 naming spec.accessKey", resp.StatusCode, data)
	}
}

// post sends a JSON POST through the edge with key.
func post(t *testing.T, key, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, platform.EdgeURL+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}
