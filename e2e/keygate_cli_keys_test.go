package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// cliUser makes a store user whose group may read every cluster, and a keygate CLI logged in
// as them with a password.
func cliUser(t *testing.T, prefix string) (c *keygateCLI, name, password string) {
	t.Helper()
	name, password = unique(prefix), "pw-"+randomHex(t, 12)
	group := name + "-readers"
	keystoreCmd(t, password+"\n", "create-user", name, "--password-stdin", "--bcrypt-cost", "4", "--groups", group)
	if err := platform.GrantView(context.Background(), group); err != nil {
		t.Fatal(err)
	}
	c = newKeygateCLI(t)
	c.keygate(password+"\n", "login", platform.EdgeURL, "--username", name, "--password-stdin", "--certificate-authority", edgeCA())
	return c, name, password
}

func edgeCA() string { return filepath.Join(platform.Dir, "pki", "edge-ca.crt") }

// fails runs keygate expecting it to fail, and returns its standard error.
func (c *keygateCLI) fails(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, filepath.Join(platform.Bin, "keygate"), args...)
	if err == nil {
		c.t.Fatalf("keygate %s succeeded, want a failure:\n%s%s", strings.Join(args, " "), out, errOut)
	}
	return errOut
}

// TestKeygateCLIAccessKeys: a user creates a scoped key with the CLI (the plain key alone on
// stdout), a CLI logged in with it reaches only its scope and cannot make a wider key (the
// server's refusal shown as is), -o json carries the object, list accesskeys shows them; and
// once the key is deleted at the edge, kubectl through the exec plugin says to log in again.
func TestKeygateCLIAccessKeys(t *testing.T) {
	t.Parallel()
	owner, user, _ := cliUser(t, "clikeys")
	scope := filepath.Join(t.TempDir(), "scope.yaml")
	if err := os.WriteFile(scope, []byte("rules:\n- requestTargets: [Management]\nclusters:\n- cluster: demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyName := unique("ci")
	out, errOut, err := owner.run("", filepath.Join(platform.Bin, "keygate"), "create", "accesskey", keyName, "--scope-file", scope, "--ttl", "1h")
	key := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(key, "kgk_") || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("create accesskey: %v\nstdout %q\nstderr %s", err, out, errOut)
	}
	t.Logf("keygate create accesskey, stderr: %s", errOut)

	scoped := newKeygateCLI(t)
	scoped.keygate(key+"\n", "login", platform.EdgeURL, "--access-key-stdin", "--certificate-authority", edgeCA())
	if out := scoped.keygate("", "list", "clusters"); !strings.Contains(out, "demo") || strings.Contains(out, "staging") {
		t.Errorf("list clusters with a key scoped to demo:\n%s", out)
	}
	// No key widens itself: the server's 403 reaches the user with its reason.
	if errOut := scoped.fails("", "create", "accesskey", unique("wider")); !strings.Contains(errOut, "may only write or delete keys whose every scope entry is one of its own") {
		t.Errorf("create an unscoped key with a scoped one: %s", errOut)
	}
	var created v1.OwnedAccessKey
	jsonName := unique("json")
	if err := json.Unmarshal([]byte(owner.keygate("", "create", "accesskey", jsonName, "-o", "json")), &created); err != nil ||
		created.Spec.User != user || !strings.HasPrefix(created.Spec.Key, "kgk_") || created.Spec.Type != v1.AccessKeyTypeUser {
		t.Errorf("create -o json: %v %+v", err, created.Spec)
	}
	list := owner.keygate("", "list", "accesskeys")
	if !strings.Contains(list, keyName) || !strings.Contains(list, jsonName) || strings.Contains(list, "kgk_") {
		t.Errorf("list accesskeys:\n%s", list)
	}
	owner.keygate("", "delete", "accesskey", jsonName)
	if errOut := owner.fails("", "delete", "accesskey", jsonName); !strings.Contains(errOut, "not found among the keys you manage") {
		t.Errorf("delete a deleted key: %s", errOut)
	}
	deletedAtTheEdge(t, owner, scoped, keyName)
}

// deletedAtTheEdge: the scoped CLI's key works through the exec plugin, is deleted by its
// owner, and then kubectl (through the plugin's second run after the 401) and keygate itself say
// to log in again, naming the edge.
func deletedAtTheEdge(t *testing.T, owner, scoped *keygateCLI, keyName string) {
	t.Helper()
	scoped.keygate("", "use", "cluster", "demo")
	if out, errOut, err := scoped.kubectl("get", "ns", "default", "-o", "name"); err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Fatalf("kubectl get ns with the created key: %q %v %s", out, err, errOut)
	}
	owner.keygate("", "delete", "accesskey", keyName)
	want := "run `keygate login " + platform.EdgeURL + "` again"
	var last string
	eventually(t, 30*time.Second, "kubectl refused after the key's deletion", func() error {
		_, errOut, err := scoped.kubectl("get", "ns", "default", "-o", "name")
		last = errOut
		if err == nil {
			return errors.New("kubectl still works")
		}
		return nil
	})
	if !strings.Contains(last, "refused the saved key") || !strings.Contains(last, want) {
		t.Errorf("kubectl with a key deleted at the edge says:\n%s\nwant %q", last, want)
	}
	t.Logf("kubectl with a key deleted at the edge:\n%s", last)
	if errOut := scoped.fails("", "list", "clusters"); !strings.Contains(errOut, want) {
		t.Errorf("keygate list with a key deleted at the edge: %s", errOut)
	}
}
