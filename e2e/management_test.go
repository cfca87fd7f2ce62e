package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

var management = edgepath.Ref{Kind: edgepath.KindManagement}

// kubectlIn runs kubectl against the management API with extra environment variables.
func kubectlIn(t *testing.T, cfg string, env []string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", cfg, "--context", "loft-management"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// The commands of Loft's documentation, unmodified, with a user's own access key as token.
func TestDocumentedManagementCommands(t *testing.T) {
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: "my-user"})
	cfg := kubeconfig(t, userKey)
	dir := t.TempDir()
	object := filepath.Join(dir, "object.yaml")
	os.WriteFile(object, []byte(`apiVersion: management.loft.sh/v1
kind: OwnedAccessKey
metadata:
  name: my-access-key
spec:
  displayName: my-display-name
  ttl: 1728000
  type: User
  user: my-user
`), 0o644)
	run := func(env []string, args ...string) string {
		t.Helper()
		out, errOut, err := kubectlIn(t, cfg, env, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}

	if out := run(nil, "create", "-f", object); !strings.Contains(out, "ownedaccesskey.management.loft.sh/my-access-key created") {
		t.Errorf("create: %q", out)
	}
	out := run(nil, "get", "ownedaccesskeys.management.loft.sh")
	if !strings.Contains(out, "my-access-key") || !strings.Contains(out, "user:my-user") || !strings.Contains(out, "LAST ACTIVITY") {
		t.Errorf("get table:\n%s", out)
	}
	out = run(nil, "get", "ownedaccesskeys.management.loft.sh", "my-access-key", "-o", "yaml")
	var got v1.OwnedAccessKey
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("get -o yaml: %v\n%s", err, out)
	}
	if got.Spec.DisplayName != "my-display-name" || got.Spec.TTL != 1728000 || got.Spec.Key != "" || got.ResourceVersion == "" {
		t.Errorf("get -o yaml = %+v; want the object without its key", got)
	}

	editor := filepath.Join(dir, "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/^  displayName: .*/  displayName: edited/' \"$1\"\n"), 0o755)
	if out := run([]string{"KUBE_EDITOR=" + editor}, "edit", "ownedaccesskeys.management.loft.sh", "my-access-key"); !strings.Contains(out, "edited") {
		t.Errorf("edit: %q", out)
	}
	run(nil, "patch", "ownedaccesskeys.management.loft.sh", "my-access-key", "--type", "json", "-p", `[{"op": "add", "path": "/metadata/annotations/my-annotation", "value": "my-value"}]`)
	run(nil, "patch", "ownedaccesskeys.management.loft.sh", "my-access-key", "--type", "merge", "-p", `{"spec":{"description":"merged"}}`)
	k, err := keys.Get(context.Background(), "my-access-key")
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec.DisplayName != "edited" || k.Annotations["my-annotation"] != "my-value" || k.Spec.Description != "merged" {
		t.Errorf("after edit and patches: displayName %q, annotations %v, description %q", k.Spec.DisplayName, k.Annotations, k.Spec.Description)
	}
	if out := run(nil, "delete", "ownedaccesskeys.management.loft.sh", "my-access-key"); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %q", out)
	}
	if _, err := keys.Get(context.Background(), "my-access-key"); err == nil {
		t.Error("the key still exists after kubectl delete")
	}
}

// The create response is the only place the plain key shows, and the key works at once.
func TestCreateReturnsWorkingKeyOnce(t *testing.T) {
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin"})
	cfg := kubeconfig(t, userKey)
	name := unique("created")
	obj := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(obj, []byte("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+name+"\nspec:\n  user: admin\n"), 0o644)
	out, errOut, err := kubectlIn(t, cfg, nil, "create", "-f", obj, "-o", "jsonpath={.spec.key}")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	if !strings.HasPrefix(out, store.KeyPrefix) {
		t.Fatalf("create response key = %q, want a generated key", out)
	}
	if _, errOut, err := runKubectl(t, kubeconfig(t, out), demo, "get", "--raw", "/version"); err != nil {
		t.Errorf("the new key does not work at once: %v\n%s", err, errOut)
	}
	for _, args := range [][]string{{"get", "ownedaccesskeys", name, "-o", "yaml"}, {"get", "ownedaccesskeys", "-o", "yaml"}} {
		got, _, err := kubectlIn(t, cfg, nil, args...)
		if err != nil || strings.Contains(got, out) {
			t.Errorf("kubectl %v shows the plain key (or failed: %v)", args, err)
		}
	}
}

// Who sees and manages which key: a user their own, a team member their team's, an admin all;
// another user's key is "not found", not "forbidden", so its existence does not leak.
func TestOwnershipThroughKubectl(t *testing.T) {
	t.Parallel()
	aliceName, _ := newKey(t, v1.OwnedAccessKeySpec{User: unique("alice")})
	alice, _ := keys.Get(context.Background(), aliceName)
	_, bobKey := newKey(t, v1.OwnedAccessKeySpec{User: unique("bob")})
	_, adminKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin", Groups: []string{"keygate:admins"}})
	bob, admin := kubeconfig(t, bobKey), kubeconfig(t, adminKey)

	if _, errOut, err := kubectlIn(t, bob, nil, "get", "ownedaccesskeys", aliceName); err == nil || !strings.Contains(errOut, "NotFound") && !strings.Contains(errOut, "not found") {
		t.Errorf("bob gets alice's key: err %v, %s; want not found", err, errOut)
	}
	if out, _, err := kubectlIn(t, bob, nil, "get", "ownedaccesskeys", "-o", "name"); err != nil || strings.Contains(out, aliceName) {
		t.Errorf("bob's list shows alice's key (or failed: %v):\n%s", err, out)
	}
	if _, errOut, err := kubectlIn(t, bob, nil, "delete", "ownedaccesskeys", aliceName); err == nil {
		t.Errorf("bob deleted alice's key: %s", errOut)
	}
	obj := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(obj, []byte("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+unique("for-alice")+"\nspec:\n  user: "+alice.Spec.User+"\n"), 0o644)
	if _, errOut, err := kubectlIn(t, bob, nil, "create", "-f", obj); err == nil || !strings.Contains(errOut, "only admins may manage access keys of another user") {
		t.Errorf("bob creates a key for alice: err %v, %s; want Forbidden", err, errOut)
	}
	if out, errOut, err := kubectlIn(t, admin, nil, "get", "ownedaccesskeys", aliceName, "-o", "name"); err != nil || !strings.Contains(out, aliceName) {
		t.Errorf("admin cannot see alice's key: %v %s", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, admin, nil, "create", "-f", obj); err != nil {
		t.Errorf("admin creates a key for alice: %v %s", err, errOut)
	}
}

// Two creates of one name at once: exactly one wins, the other gets AlreadyExists (409).
func TestConcurrentCreatesConflict(t *testing.T) {
	t.Parallel()
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: "admin"})
	cfg := kubeconfig(t, key)
	obj := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(obj, []byte("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+unique("race")+"\nspec:\n  user: admin\n"), 0o644)
	errs := make(chan string, 2)
	for range 2 {
		go func() {
			_, errOut, err := kubectlIn(t, cfg, nil, "create", "-f", obj)
			if err != nil {
				errs <- errOut
			} else {
				errs <- ""
			}
		}()
	}
	a, b := <-errs, <-errs
	if (a == "") == (b == "") {
		t.Fatalf("want exactly one create to win; stderr %q and %q", a, b)
	}
	if lost := a + b; !strings.Contains(lost, "AlreadyExists") && !strings.Contains(lost, "already exists") {
		t.Errorf("the losing create: %q; want AlreadyExists", lost)
	}
}
