package e2e

import (
	"strings"
	"testing"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// The attack: a key scoped to the management API and one cluster mints itself an unscoped key
// (or a key for another cluster) through the edge. Refused; a key within its scope is made.
func TestScopedKeyCannotMintAWiderKey(t *testing.T) {
	t.Parallel()
	user := unique("widen")
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: user, Scope: &v1.AccessKeyScope{
		Rules:    []v1.AccessKeyScopeRule{{RequestTargets: []v1.RequestTarget{v1.RequestTargetManagement}}},
		Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}},
	}})
	cfg := kubeconfig(t, key)
	manifest := func(name, scope string) string {
		return "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: " + name + "\nspec:\n  user: " + user + "\n  " + scope
	}
	for name, wider := range map[string]string{
		"unscoped":      "",
		"other cluster": "scope:\n    clusters:\n    - cluster: staging\n",
	} {
		_, errOut, err := kubectlIn(t, cfg, nil, "create", "-f", writeManifest(t, manifest(unique("wider"), wider)))
		if err == nil || !strings.Contains(errOut, "Forbidden") || !strings.Contains(errOut, "spec.scope") {
			t.Errorf("%s: err %v, stderr %q; want Forbidden naming spec.scope", name, err, errOut)
		}
	}
	if out := mustKubectl(t, cfg, "create", "-f", writeManifest(t, manifest(unique("within"), "scope:\n    clusters:\n    - cluster: demo\n"))); !strings.Contains(out, "created") {
		t.Errorf("a key within the scope: %q", out)
	}
}
