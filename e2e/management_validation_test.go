package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// A typo in a manifest is refused, not silently dropped, and the message names the field, both
// with kubectl's --validate=strict and for a plain HTTP client asking for fieldValidation=Strict.
func TestStrictValidationNamesUnknownField(t *testing.T) {
	t.Parallel()
	user := unique("strict")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	name := unique("typo")
	manifest := writeManifest(t, `apiVersion: management.loft.sh/v1
kind: OwnedAccessKey
metadata:
  name: `+name+`
spec:
  user: `+user+`
  displayNmae: a typo of displayName
`)
	_, errOut, err := kubectlIn(t, cfg, nil, "create", "--validate=strict", "-f", manifest)
	if err == nil || !strings.Contains(errOut, `unknown field "spec.displayNmae"`) {
		t.Errorf("kubectl create --validate=strict with spec.displayNmae: err %v, stderr %q; want a refusal naming spec.displayNmae", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, cfg, nil, "get", "ownedaccesskeys", name); err == nil || !strings.Contains(errOut, "NotFound") && !strings.Contains(errOut, "not found") {
		t.Errorf("the refused key exists: err %v, %s", err, errOut)
	}

	body := `{"apiVersion": "management.loft.sh/v1", "kind": "OwnedAccessKey", "metadata": {"name": "` + name + `"}, "spec": {"user": "` + user + `", "ttll": 60}}`
	resp, data := send(t, userKey, http.MethodPost, accessKeysPath+"?fieldValidation=Strict", contentJSON, body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(status(t, resp, data).Message, `unknown field "spec.ttll"`) {
		t.Errorf("POST with spec.ttll and fieldValidation=Strict: HTTP %d, want 400 naming spec.ttll: %s", resp.StatusCode, data)
	}
}

// The server's own validation answers 422 Invalid with a Status whose causes name each bad
// field, which kubectl prints; a client-supplied key is never echoed back in the error.
func TestValidationErrorsNameTheField(t *testing.T) {
	t.Parallel()
	user := unique("invalid")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	const shortKey = "short-secret-7f3a9" // under 32 characters

	name := unique("short")
	manifest := writeManifest(t, "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+name+"\nspec:\n  user: "+user+"\n  key: "+shortKey+"\n")
	_, errOut, err := kubectlIn(t, cfg, nil, "create", "-f", manifest)
	if err == nil || !strings.Contains(errOut, "spec.key") || !strings.Contains(errOut, "at least 32 characters") {
		t.Errorf("kubectl create with a short spec.key: err %v, stderr %q; want an error naming spec.key", err, errOut)
	}
	if strings.Contains(errOut, shortKey) {
		t.Errorf("the error shows the key: %s", errOut)
	}

	// Over HTTP: every problem at once, each with its field.
	obj := accessKeyObject(unique("bad"), v1.OwnedAccessKeySpec{
		User:  user,
		Key:   shortKey,
		TTL:   -1,
		Type:  "Bogus",
		Scope: &v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p"}}},
	})
	resp, body := send(t, userKey, http.MethodPost, accessKeysPath, contentJSON, obj)
	s := status(t, resp, body)
	if resp.StatusCode != http.StatusUnprocessableEntity || s.Reason != metav1.StatusReasonInvalid {
		t.Fatalf("POST with invalid fields: HTTP %d reason %q, want 422 Invalid: %s", resp.StatusCode, s.Reason, body)
	}
	if s.Details == nil || s.Details.Name != obj.Name || s.Details.Kind != "OwnedAccessKey" || s.Details.Group != v1.GroupName {
		t.Errorf("Status details = %+v, want name %s, kind OwnedAccessKey, group %s", s.Details, obj.Name, v1.GroupName)
	}
	var fields []string
	if s.Details != nil {
		for _, c := range s.Details.Causes {
			fields = append(fields, c.Field)
		}
	}
	for _, f := range []string{"spec.key", "spec.ttl", "spec.type", "spec.scope.spaces[0].space"} {
		if !slices.Contains(fields, f) {
			t.Errorf("causes name %v, want %s among them: %s", fields, f, body)
		}
	}
	if strings.Contains(string(body), shortKey) {
		t.Errorf("the 422 shows the key: %s", body)
	}
	if resp, body := get(t, userKey, accessKeysPath+"/"+obj.Name, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the invalid key was stored: HTTP %d: %s", resp.StatusCode, body)
	}

	// An update is validated as well: the key of an existing access key cannot be replaced
	// (only its digest is stored), and the refusal names spec.key.
	existing := createOverHTTP(t, userKey, accessKeyObject(unique("existing"), v1.OwnedAccessKeySpec{User: user}))
	resp, body = send(t, userKey, http.MethodPatch, accessKeysPath+"/"+existing.Name, contentMergePatch,
		`{"spec": {"key": "a-replacement-key-of-more-than-32-characters"}}`)
	s = status(t, resp, body)
	if resp.StatusCode != http.StatusUnprocessableEntity || s.Details == nil || len(s.Details.Causes) != 1 || s.Details.Causes[0].Field != "spec.key" {
		t.Errorf("merge patch replacing spec.key: HTTP %d, want 422 naming spec.key: %s", resp.StatusCode, body)
	}
	if err := keyWorks(t, existing.Spec.Key); err != nil {
		t.Errorf("the original key after a refused replacement: %v", err)
	}

	// A name that is no DNS subdomain is refused with metadata.name.
	resp, body = send(t, userKey, http.MethodPost, accessKeysPath, contentJSON, accessKeyObject("Not_A_Name", v1.OwnedAccessKeySpec{User: user}))
	s = status(t, resp, body)
	if resp.StatusCode != http.StatusUnprocessableEntity || s.Details == nil || len(s.Details.Causes) == 0 || s.Details.Causes[0].Field != "metadata.name" {
		t.Errorf("POST named Not_A_Name: HTTP %d, want 422 naming metadata.name: %s", resp.StatusCode, body)
	}
}
