package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// getAccessKeyYAML is `kubectl get ownedaccesskeys NAME -o yaml`, decoded, with the raw text.
func getAccessKeyYAML(t *testing.T, cfg, name string, extra ...string) (*v1.OwnedAccessKey, string) {
	t.Helper()
	out := mustKubectl(t, cfg, append([]string{"get", "ownedaccesskeys.management.loft.sh", name, "-o", "yaml"}, extra...)...)
	var k v1.OwnedAccessKey
	if err := yaml.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("get -o yaml: %v\n%s", err, out)
	}
	return &k, out
}

func accessKeyManifest(name, user, displayName, key string) string {
	m := "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: " + name +
		"\nspec:\n  user: " + user + "\n  displayName: " + displayName + "\n"
	if key != "" {
		m += "  key: " + key + "\n"
	}
	return m
}

// Client-side `kubectl apply`: created, then configured by a changed manifest, then unchanged;
// the last-applied annotation follows the manifest.
func TestKubectlApply(t *testing.T) {
	t.Parallel()
	user := unique("apply")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	name := unique("applied")
	ref := "ownedaccesskey.management.loft.sh/" + name

	if out := mustKubectl(t, cfg, "apply", "-f", writeManifest(t, accessKeyManifest(name, user, "first", ""))); !strings.Contains(out, ref+" created") {
		t.Errorf("first apply: %q, want %q", out, ref+" created")
	}
	k, _ := getAccessKeyYAML(t, cfg, name)
	if k.Spec.DisplayName != "first" || !strings.Contains(k.Annotations[lastApplied], `"displayName":"first"`) {
		t.Errorf("after the first apply: displayName %q, last-applied %q", k.Spec.DisplayName, k.Annotations[lastApplied])
	}
	firstRV := k.ResourceVersion

	changed := writeManifest(t, accessKeyManifest(name, user, "second", ""))
	if out := mustKubectl(t, cfg, "apply", "-f", changed); !strings.Contains(out, ref+" configured") {
		t.Errorf("apply of a changed manifest: %q, want %q", out, ref+" configured")
	}
	k, _ = getAccessKeyYAML(t, cfg, name)
	if k.Spec.DisplayName != "second" || !strings.Contains(k.Annotations[lastApplied], `"displayName":"second"`) || k.ResourceVersion == firstRV {
		t.Errorf("after the second apply: displayName %q, resourceVersion %s (was %s), last-applied %q", k.Spec.DisplayName, k.ResourceVersion, firstRV, k.Annotations[lastApplied])
	}
	if out := mustKubectl(t, cfg, "apply", "-f", changed); !strings.Contains(out, ref+" unchanged") {
		t.Errorf("apply of the same manifest again: %q, want %q", out, ref+" unchanged")
	}
}

// `kubectl apply --server-side`: the server creates the object, records kubectl as the manager
// of the applied fields, applies a change, and refuses another manager's conflicting change
// unless it forces it.
func TestKubectlServerSideApply(t *testing.T) {
	t.Parallel()
	user := unique("ssa")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)
	name := unique("ssa")
	ref := "ownedaccesskey.management.loft.sh/" + name

	if out := mustKubectl(t, cfg, "apply", "--server-side", "-f", writeManifest(t, accessKeyManifest(name, user, "one", ""))); !strings.Contains(out, ref+" serverside-applied") {
		t.Errorf("server-side apply (create): %q", out)
	}
	k, _ := getAccessKeyYAML(t, cfg, name, "--show-managed-fields")
	if k.Spec.DisplayName != "one" {
		t.Errorf("after create: displayName %q, want one", k.Spec.DisplayName)
	}
	managedBy := func(k *v1.OwnedAccessKey, manager, field string) bool {
		for _, m := range k.ManagedFields {
			if m.Manager == manager && m.Operation == "Apply" && m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), `"`+field+`"`) {
				return true
			}
		}
		return false
	}
	if !managedBy(k, "kubectl", "f:displayName") || !managedBy(k, "kubectl", "f:user") {
		t.Errorf("managedFields = %+v, want kubectl's Apply of spec.displayName and spec.user", k.ManagedFields)
	}
	if _, ok := k.Annotations[lastApplied]; ok {
		t.Errorf("server-side apply left a client-side last-applied annotation")
	}

	if out := mustKubectl(t, cfg, "apply", "--server-side", "-f", writeManifest(t, accessKeyManifest(name, user, "two", ""))); !strings.Contains(out, ref+" serverside-applied") {
		t.Errorf("server-side apply (update): %q", out)
	}
	if k, _ = getAccessKeyYAML(t, cfg, name); k.Spec.DisplayName != "two" {
		t.Errorf("after the update: displayName %q, want two", k.Spec.DisplayName)
	}

	// Another manager setting the field kubectl owns is a conflict...
	other := writeManifest(t, accessKeyManifest(name, user, "three", ""))
	_, errOut, err := kubectlIn(t, cfg, nil, "apply", "--server-side", "--field-manager", "other-tool", "-f", other)
	if err == nil || !strings.Contains(errOut, "conflict") || !strings.Contains(errOut, ".spec.displayName") {
		t.Errorf("conflicting apply by another manager: err %v, stderr %q; want a conflict on .spec.displayName", err, errOut)
	}
	if k, _ = getAccessKeyYAML(t, cfg, name); k.Spec.DisplayName != "two" {
		t.Errorf("after the refused conflicting apply: displayName %q, want two", k.Spec.DisplayName)
	}
	// ...which --force-conflicts takes over.
	mustKubectl(t, cfg, "apply", "--server-side", "--field-manager", "other-tool", "--force-conflicts", "-f", other)
	k, _ = getAccessKeyYAML(t, cfg, name, "--show-managed-fields")
	if k.Spec.DisplayName != "three" || !managedBy(k, "other-tool", "f:displayName") || managedBy(k, "kubectl", "f:displayName") {
		t.Errorf("after --force-conflicts: displayName %q, managedFields %+v; want three, owned by other-tool", k.Spec.DisplayName, k.ManagedFields)
	}
}

// A manifest may carry its own spec.key (e.g. a key kept in a secret manager). Applied with
// either kind of apply, the key works at the edge, yet never shows in what kubectl reads back,
// including kubectl's own last-applied annotation.
func TestApplyWithKeyNeverShowsIt(t *testing.T) {
	t.Parallel()
	user := unique("applykey")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)

	for _, mode := range []string{"client-side", "server-side"} {
		t.Run(mode, func(t *testing.T) {
			name := unique("withkey")
			plain := "e2e-manifest-" + randomHex(t, 24) // 61 characters, above the 32 minimum
			args := []string{"apply", "-f", writeManifest(t, accessKeyManifest(name, user, "from a manifest", plain))}
			if mode == "server-side" {
				args = append(args, "--server-side")
			}
			mustKubectl(t, cfg, args...)

			k, out := getAccessKeyYAML(t, cfg, name)
			if strings.Contains(out, plain) {
				t.Errorf("kubectl get -o yaml shows the plain key:\n%s", out)
			}
			if k.Spec.Key != "" || k.Spec.DisplayName != "from a manifest" {
				t.Errorf("get -o yaml: spec.key %q, displayName %q", k.Spec.Key, k.Spec.DisplayName)
			}
			if mode == "client-side" {
				// The annotation is kept (apply needs it), only without the key.
				if a := k.Annotations[lastApplied]; !strings.Contains(a, `"displayName":"from a manifest"`) || strings.Contains(a, `"key"`) {
					t.Errorf("last-applied annotation = %q; want the manifest without spec.key", a)
				}
			}
			for _, args := range [][]string{{"get", "ownedaccesskeys", "-o", "json"}, {"get", "ownedaccesskeys", name, "-o", "json", "--show-managed-fields"}} {
				if out := mustKubectl(t, cfg, args...); strings.Contains(out, plain) {
					t.Errorf("kubectl %s shows the plain key", strings.Join(args, " "))
				}
			}
			// The manifest's key is the key: it lists its own object through the edge.
			resp, body := get(t, plain, accessKeysPath+"/"+name, nil)
			if resp.StatusCode != 200 {
				t.Errorf("GET %s with the manifest's key: HTTP %d: %s", name, resp.StatusCode, body)
			}
			if err := keyWorks(t, plain); err != nil {
				t.Errorf("the manifest's key: %v", err)
			}
		})
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// A manifest with spec.key is applied again and again (GitOps re-applies what it holds): the
// same key is no change of key, so re-applying it, unchanged or with another field changed,
// works like any apply, and the key keeps working. A different key is still refused.
func TestReapplyManifestWithKey(t *testing.T) {
	t.Parallel()
	user := unique("reapply")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)

	for _, mode := range []string{"client-side", "server-side"} {
		t.Run(mode, func(t *testing.T) {
			name := unique("reapplied")
			ref := "ownedaccesskey.management.loft.sh/" + name
			plain := "e2e-manifest-" + randomHex(t, 24)
			apply := func(manifest string) (string, string, error) {
				args := []string{"apply", "-f", writeManifest(t, manifest)}
				if mode == "server-side" {
					args = append(args, "--server-side")
				}
				return kubectlIn(t, cfg, nil, args...)
			}
			first := accessKeyManifest(name, user, "first", plain)
			if out, errOut, err := apply(first); err != nil {
				t.Fatalf("first apply: %v\n%s%s", err, out, errOut)
			}
			// Client-side, kubectl says "configured" rather than "unchanged": the stored object
			// never holds the key, so kubectl's three-way diff always sends it.
			if out, errOut, err := apply(first); err != nil {
				t.Errorf("apply of the same manifest again: %v\n%s%s", err, out, errOut)
			} else if !strings.Contains(out, ref+" ") {
				t.Errorf("apply of the same manifest again: %q, want a line for %s", out, ref)
			}
			if out, errOut, err := apply(accessKeyManifest(name, user, "second", plain)); err != nil {
				t.Errorf("apply with a changed displayName: %v\n%s%s", err, out, errOut)
			}
			k, out := getAccessKeyYAML(t, cfg, name)
			if k.Spec.DisplayName != "second" || strings.Contains(out, plain) {
				t.Errorf("after re-applying: displayName %q (want second); plain key shown: %v", k.Spec.DisplayName, strings.Contains(out, plain))
			}
			if err := keyWorks(t, plain); err != nil {
				t.Errorf("the manifest's key after re-applying: %v", err)
			}
			// Another key in the manifest is a change of key, which stays refused.
			other := "e2e-manifest-" + randomHex(t, 24)
			if _, errOut, err := apply(accessKeyManifest(name, user, "second", other)); err == nil || !strings.Contains(errOut, "spec.key") {
				t.Errorf("apply with another key: err %v, stderr %q; want a refusal naming spec.key", err, errOut)
			}
			if err := keyRefused(t, other, accessKeysPath); err != nil {
				t.Errorf("the refused key: %v", err)
			}
		})
	}
}
