package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// accessKeysPath is the ownedaccesskeys collection on the edge, as curl would use it.
const accessKeysPath = "/kubernetes/management/apis/management.loft.sh/v1/ownedaccesskeys"

// Content types of the three patch flavours and of a plain JSON body.
const (
	contentJSON       = "application/json"
	contentMergePatch = "application/merge-patch+json"
	contentJSONPatch  = "application/json-patch+json"
)

// send sends method path through the edge with key as bearer token and body (a string is sent
// as is, anything else as JSON; nil sends nothing) with the given Content-Type.
func send(t *testing.T, key, method, path, contentType string, body any) (*http.Response, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, platform.EdgeURL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

// accessKeyObject is an OwnedAccessKey as a client would POST it.
func accessKeyObject(name string, spec v1.OwnedAccessKeySpec) *v1.OwnedAccessKey {
	return &v1.OwnedAccessKey{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
}

// createOverHTTP POSTs an access key through the edge with key, fails the test unless it is
// created (201), and returns the created object, which carries the plain key.
func createOverHTTP(t *testing.T, key string, obj *v1.OwnedAccessKey) *v1.OwnedAccessKey {
	t.Helper()
	resp, body := send(t, key, http.MethodPost, accessKeysPath, contentJSON, obj)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: HTTP %d, want 201: %s", obj.Name, resp.StatusCode, body)
	}
	return decodeAccessKey(t, body)
}

func decodeAccessKey(t *testing.T, body []byte) *v1.OwnedAccessKey {
	t.Helper()
	var k v1.OwnedAccessKey
	if err := json.Unmarshal(body, &k); err != nil || k.Kind != "OwnedAccessKey" {
		t.Fatalf("not an OwnedAccessKey (%v): %s", err, body)
	}
	return &k
}

// writeManifest writes a manifest into the test's temporary directory and returns its path.
func writeManifest(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustKubectl runs kubectl against the management API and fails the test if it fails.
func mustKubectl(t *testing.T, cfg string, args ...string) string {
	t.Helper()
	out, errOut, err := kubectlIn(t, cfg, nil, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// keyWorks asks whether key gets 200 from the management API through the edge: the request
// only passes when extauthz accepts the key, and keystore knows who it is.
func keyWorks(t *testing.T, key string) error {
	t.Helper()
	resp, body := get(t, key, accessKeysPath, nil)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return nil
}

// keyRefused asks whether key gets 401 through the edge.
func keyRefused(t *testing.T, key, path string) error {
	t.Helper()
	resp, body := get(t, key, path, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%s: HTTP %d, want 401: %s", path, resp.StatusCode, body)
	}
	return nil
}

// The management API with nothing but HTTP and a bearer token, as curl uses it: create, get,
// list, both patch types, conflicts and delete, with the status codes and bodies of a
// Kubernetes API server. The plain key is in the create response and nowhere else.
func TestManagementOverHTTP(t *testing.T) {
	t.Parallel()
	user := unique("curl")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	name := unique("http")
	objPath := accessKeysPath + "/" + name

	created := createOverHTTP(t, userKey, accessKeyObject(name, v1.OwnedAccessKeySpec{User: user, DisplayName: "made with curl"}))
	plain := created.Spec.Key
	if !strings.HasPrefix(plain, store.KeyPrefix) || len(plain) < 32 {
		t.Fatalf("create response spec.key = %q, want a generated %s... key", plain, store.KeyPrefix)
	}
	if created.ResourceVersion == "" || created.UID == "" || created.CreationTimestamp.IsZero() {
		t.Errorf("create response lacks server-set metadata: %+v", created.ObjectMeta)
	}
	if got := created.Annotations["keygate.dev/created-by"]; got != user {
		t.Errorf("created-by annotation = %q, want %q", got, user)
	}
	// The key works at once: the store is the source of truth, there is nothing to sync.
	if err := keyWorks(t, plain); err != nil {
		t.Errorf("the new key: %v", err)
	}

	// A repeated create of the name is 409 AlreadyExists.
	resp, body := send(t, userKey, http.MethodPost, accessKeysPath, contentJSON, accessKeyObject(name, v1.OwnedAccessKeySpec{User: user}))
	if resp.StatusCode != http.StatusConflict || status(t, resp, body).Reason != metav1.StatusReasonAlreadyExists {
		t.Errorf("second POST of %s: HTTP %d, want 409 AlreadyExists: %s", name, resp.StatusCode, body)
	}

	resp, body = get(t, userKey, objPath, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", objPath, resp.StatusCode, body)
	}
	if got := decodeAccessKey(t, body); got.Spec.DisplayName != "made with curl" || got.Spec.Key != "" || got.UID != created.UID {
		t.Errorf("GET = %+v; want the created object without its key", got)
	}
	if strings.Contains(string(body), plain) {
		t.Errorf("GET shows the plain key: %s", body)
	}

	resp, body = get(t, userKey, accessKeysPath+"?fieldSelector=metadata.name%3D"+name, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: HTTP %d: %s", resp.StatusCode, body)
	}
	var list v1.OwnedAccessKeyList
	if err := json.Unmarshal(body, &list); err != nil || list.Kind != "OwnedAccessKeyList" || list.ResourceVersion == "" {
		t.Fatalf("list is not an OwnedAccessKeyList with a resourceVersion (%v): %s", err, body)
	}
	if len(list.Items) != 1 || list.Items[0].Name != name {
		t.Errorf("list with fieldSelector metadata.name=%s has %d items: %s", name, len(list.Items), body)
	}
	resp, body = get(t, userKey, accessKeysPath, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"`+name+`"`) || strings.Contains(string(body), plain) {
		t.Errorf("full list: HTTP %d, want 200 with %s and without its plain key: %s", resp.StatusCode, name, body)
	}

	resp, body = send(t, userKey, http.MethodPatch, objPath, contentMergePatch, `{"spec":{"description":"merged"}}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("merge patch: HTTP %d: %s", resp.StatusCode, body)
	}
	merged := decodeAccessKey(t, body)
	if merged.Spec.Description != "merged" || merged.Spec.DisplayName != "made with curl" || merged.ResourceVersion == created.ResourceVersion {
		t.Errorf("after merge patch: description %q, displayName %q, resourceVersion %s (was %s)",
			merged.Spec.Description, merged.Spec.DisplayName, merged.ResourceVersion, created.ResourceVersion)
	}

	resp, body = send(t, userKey, http.MethodPatch, objPath, contentJSONPatch,
		`[{"op": "replace", "path": "/spec/displayName", "value": "json-patched"}, {"op": "add", "path": "/metadata/labels", "value": {"team": "e2e"}}]`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("json patch: HTTP %d: %s", resp.StatusCode, body)
	}
	patched := decodeAccessKey(t, body)
	if patched.Spec.DisplayName != "json-patched" || patched.Labels["team"] != "e2e" || patched.Spec.Description != "merged" {
		t.Errorf("after json patch: %+v", patched)
	}
	// A json patch whose test fails changes nothing.
	resp, body = send(t, userKey, http.MethodPatch, objPath, contentJSONPatch,
		`[{"op": "test", "path": "/spec/displayName", "value": "something else"}, {"op": "replace", "path": "/spec/displayName", "value": "must not happen"}]`)
	if resp.StatusCode != http.StatusUnprocessableEntity || status(t, resp, body).Reason != metav1.StatusReasonInvalid {
		t.Errorf("json patch with a failing test: HTTP %d, want 422 Invalid: %s", resp.StatusCode, body)
	}

	// A PUT based on an old read is 409 Conflict, not a lost update.
	stale := merged.DeepCopy()
	stale.Spec.DisplayName = "stale write"
	resp, body = send(t, userKey, http.MethodPut, objPath, contentJSON, stale)
	if resp.StatusCode != http.StatusConflict || status(t, resp, body).Reason != metav1.StatusReasonConflict {
		t.Errorf("PUT with resourceVersion %s (current %s): HTTP %d, want 409 Conflict: %s", stale.ResourceVersion, patched.ResourceVersion, resp.StatusCode, body)
	}
	// A label selector finds the labelled key.
	resp, body = get(t, userKey, accessKeysPath+"?labelSelector=team%3De2e", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"`+name+`"`) {
		t.Errorf("list with labelSelector team=e2e: HTTP %d, want 200 with %s: %s", resp.StatusCode, name, body)
	}
	resp, body = get(t, userKey, objPath, nil)
	if got := decodeAccessKey(t, body); resp.StatusCode != http.StatusOK || got.Spec.DisplayName != "json-patched" {
		t.Errorf("after the refused writes: HTTP %d, displayName %q, want json-patched", resp.StatusCode, got.Spec.DisplayName)
	}

	resp, body = send(t, userKey, http.MethodDelete, objPath, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), plain) {
		t.Errorf("DELETE response shows the plain key: %s", body)
	}
	resp, body = get(t, userKey, objPath, nil)
	if resp.StatusCode != http.StatusNotFound || status(t, resp, body).Reason != metav1.StatusReasonNotFound {
		t.Errorf("GET after DELETE: HTTP %d, want 404 NotFound: %s", resp.StatusCode, body)
	}
	resp, body = send(t, userKey, http.MethodDelete, objPath, "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: HTTP %d, want 404: %s", resp.StatusCode, body)
	}
	// A deleted key stops working (allowing extauthz a moment to drop a cached copy).
	eventually(t, 5*time.Second, "deleted key refused", func() error { return keyRefused(t, plain, accessKeysPath) })
}
