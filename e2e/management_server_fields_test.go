package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// kubectlShaped is an OwnedAccessKey as kubectl writes one (`kubectl create --dry-run=client
// -o yaml`): with `creationTimestamp: null` and `status: {}`.
func kubectlShaped(name, user, displayName string) string {
	return "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  creationTimestamp: null\n  name: " + name +
		"\nspec:\n  displayName: " + displayName + "\n  ttl: 3600\n  type: User\n  user: " + user + "\nstatus: {}\n"
}

// Every verb takes objects exactly as kubectl writes them, and the server keeps its own fields.
func TestKubectlShapedObjectsEveryVerb(t *testing.T) {
	t.Parallel()
	user := unique("shaped")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	created, applied, ssa := unique("shaped-create"), unique("shaped-apply"), unique("shaped-ssa")

	mustKubectl(t, cfg, "create", "-f", writeManifest(t, kubectlShaped(created, user, "one")))
	mustKubectl(t, cfg, "replace", "-f", writeManifest(t, kubectlShaped(created, user, "replaced")))
	mustKubectl(t, cfg, "apply", "-f", writeManifest(t, kubectlShaped(applied, user, "applied")))
	mustKubectl(t, cfg, "apply", "--server-side", "-f", writeManifest(t, kubectlShaped(ssa, user, "server-side")))
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/^  displayName: .*/  displayName: edited/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := kubectlIn(t, cfg, []string{"KUBE_EDITOR=" + editor}, "edit", "ownedaccesskeys.management.loft.sh", applied); err != nil {
		t.Fatalf("edit: %v\n%s%s", err, out, errOut)
	}
	for name, want := range map[string]string{created: "replaced", applied: "edited", ssa: "server-side"} {
		k, raw := getAccessKeyYAML(t, cfg, name)
		age := time.Since(k.CreationTimestamp.Time)
		if k.Spec.DisplayName != want || k.UID == "" || age < 0 || age > 10*time.Minute || k.Annotations["keygate.dev/created-by"] != user {
			t.Errorf("%s: displayName %q (want %q), uid %q, created %s ago, annotations %v\n%s", name, k.Spec.DisplayName, want, k.UID, age, k.Annotations, raw)
		}
	}
}

// The object of Loft's documentation, applied server-side as it stands.
func TestDocumentedObjectServerSideApply(t *testing.T) {
	t.Parallel()
	user := unique("seed")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	name := unique("my-access-key")
	seed := "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: " + name +
		"\nspec:\n  displayName: my-display-name\n  ttl: 1728000\n  type: User\n  user: " + user + "\n"
	if out := mustKubectl(t, cfg, "apply", "--server-side", "-f", writeManifest(t, seed)); !strings.Contains(out, "serverside-applied") {
		t.Errorf("apply --server-side: %q", out)
	}
	k, raw := getAccessKeyYAML(t, cfg, name)
	if k.Spec.DisplayName != "my-display-name" || k.Spec.TTL != 1728000 || k.Spec.Type != v1.AccessKeyTypeUser || k.Spec.User != user {
		t.Errorf("stored: %s", raw)
	}
}

// A client cannot make a short-lived key live longer by dating it ahead: its ttl counts from the
// server's creation time.
func TestFutureCreationTimestampStillExpires(t *testing.T) {
	t.Parallel()
	user := unique("dated")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	name := unique("dated-ahead")
	manifest := "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: " + name +
		"\n  creationTimestamp: \"2035-01-01T00:00:00Z\"\nspec:\n  ttl: 3\n  user: " + user + "\n"
	plain := mustKubectl(t, cfg, "create", "-f", writeManifest(t, manifest), "-o", "jsonpath={.spec.key}")
	if plain == "" {
		t.Fatal("create returned no key")
	}
	k, raw := getAccessKeyYAML(t, cfg, name)
	if k.CreationTimestamp.Year() == 2035 || time.Since(k.CreationTimestamp.Time) > 10*time.Minute {
		t.Fatalf("the client's creationTimestamp was kept:\n%s", raw)
	}
	eventually(t, time.Minute, "a 3 s key dated ahead is refused", func() error { return keyRefused(t, plain, accessKeysPath) })
	t.Logf("refused %s after creation (ttl 3 s)", time.Since(k.CreationTimestamp.Time).Round(time.Millisecond))
}
