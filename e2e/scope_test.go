package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/toolbin"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
	"sigs.k8s.io/yaml"
)

// Scoped keys here belong to admin, a cluster admin on every upstream: whatever they are
// refused, the edge refused.

func scopedKey(t *testing.T, s v1.AccessKeyScope) string {
	t.Helper()
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &s})
	return kubeconfig(t, key)
}

func TestReadOnlyRule(t *testing.T) {
	t.Parallel()
	ns := unique("readonly")
	if err := platform.Clusters[localdev.ClusterDemo].CreateNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := scopedKey(t, v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get", "list"}}}})
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "configmaps", "-n", ns); err != nil {
		t.Errorf("kubectl get with a get/list key: %v\n%s", err, errOut)
	}
	for name, args := range map[string][]string{
		"create": {"create", "configmap", "x", "-n", ns},
		"delete": {"delete", "namespace", ns},
	} {
		_, errOut, err := runKubectl(t, cfg, demo, args...)
		if err == nil || !strings.Contains(errOut, "is not allowed to "+name) {
			t.Errorf("kubectl %s with a get/list key: err %v, stderr %q; want the edge's Forbidden", name, err, errOut)
		}
	}
}

func TestNonResourceURLRule(t *testing.T) {
	t.Parallel()
	cfg := scopedKey(t, v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{NonResourceURLs: []string{"/version"}}}})
	out, errOut, err := runKubectl(t, cfg, demo, "version", "-o", "json")
	if err != nil || !strings.Contains(out, `"serverVersion"`) {
		t.Errorf("kubectl version with a /version key: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "--raw", "/api/v1/namespaces"); err == nil || !strings.Contains(errOut, "Forbidden") {
		t.Errorf("listing namespaces with a /version key: err %v, stderr %q; want Forbidden", err, errOut)
	}
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "--raw", "/healthz"); err == nil || !strings.Contains(errOut, "Forbidden") {
		t.Errorf("/healthz with a /version key: err %v, stderr %q; want Forbidden", err, errOut)
	}
}

func TestClusterScope(t *testing.T) {
	t.Parallel()
	cfg := scopedKey(t, v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: localdev.ClusterDemo}}})
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "namespaces"); err != nil {
		t.Errorf("demo with a demo-scoped key: %v\n%s", err, errOut)
	}
	_, errOut, err := runKubectl(t, cfg, staging, "get", "--raw", "/api/v1/namespaces")
	if err == nil || !strings.Contains(errOut, `not allowed to list namespaces on cluster "staging"`) {
		t.Errorf("staging with a demo-scoped key: err %v, stderr %q; want the edge's Forbidden", err, errOut)
	}
}

// A key scoped to one space (a namespace of a project) reaches namespaced objects there only.
func TestSpaceScope(t *testing.T) {
	t.Parallel()
	cfg := scopedKey(t, v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: localdev.Project, Space: localdev.SpaceName}}})
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "pods", "-n", localdev.SpaceName); err != nil {
		t.Errorf("pods in the space: %v\n%s", err, errOut)
	}
	for name, args := range map[string][]string{
		"another namespace":       {"get", "--raw", "/api/v1/namespaces/default/pods"},
		"a cluster-scoped list":   {"get", "--raw", "/api/v1/namespaces"},
		"pods of every namespace": {"get", "--raw", "/api/v1/pods"},
	} {
		if _, errOut, err := runKubectl(t, cfg, demo, args...); err == nil || !strings.Contains(errOut, "is not allowed to") {
			t.Errorf("%s with a space key: err %v, stderr %q; want the edge's Forbidden", name, err, errOut)
		}
	}
	if _, errOut, err := runKubectl(t, cfg, staging, "get", "--raw", "/api/v1/namespaces/"+localdev.SpaceName+"/pods"); err == nil || !strings.Contains(errOut, "is not allowed to") {
		t.Errorf("same namespace on staging (not a space there): err %v, stderr %q; want Forbidden", err, errOut)
	}
}

// A key scoped to one virtual cluster reaches it and no other target.
func TestVirtualClusterScope(t *testing.T) {
	t.Parallel()
	s := v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: localdev.Project, VirtualCluster: localdev.VirtualClusterName}}}
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &s})
	cfg := kubeconfig(t, key)
	if _, errOut, err := runKubectl(t, cfg, vc1, "get", "namespaces"); err != nil {
		t.Errorf("vc1 with a vc1 key: %v\n%s", err, errOut)
	}
	for _, path := range []string{demo.Prefix() + "api/v1/namespaces", staging.Prefix() + "api/v1/namespaces", "/grafana/demo/api/health"} {
		if resp, body := get(t, key, path, nil); resp.StatusCode != 403 {
			t.Errorf("%s with a vc1 key: HTTP %d, want 403: %s", path, resp.StatusCode, body)
		}
	}
}

func scopedToDemo() v1.OwnedAccessKeySpec {
	return v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: localdev.ClusterDemo}}}}
}

// The CI key of docs/scopes.md does what the page says: everything in its namespace of demo,
// nothing elsewhere. The scope is read from the page itself, so the page cannot drift.
func TestDocumentedCIKey(t *testing.T) {
	t.Parallel()
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(root, "docs", "scopes.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), "# ci-scope.yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/scopes.md has no ci-scope.yaml block")
	}
	var s v1.AccessKeyScope
	if err := yaml.UnmarshalStrict([]byte(block), &s); err != nil {
		t.Fatalf("the documented scope does not parse: %v", err)
	}
	ns := "ci"
	if err := platform.Clusters[localdev.ClusterDemo].CreateNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	cfg := scopedKey(t, s)
	for _, args := range [][]string{{"get", "pods", "-n", ns}, {"create", "configmap", unique("cfg"), "-n", ns}} {
		if _, errOut, err := runKubectl(t, cfg, demo, args...); err != nil {
			t.Errorf("kubectl %v with the CI key: %v\n%s", args, err, errOut)
		}
	}
	for name, c := range map[string]struct {
		ref  edgepath.Ref
		args []string
	}{
		"another namespace": {demo, []string{"get", "--raw", "/api/v1/namespaces/default/pods"}},
		"cluster-scoped":    {demo, []string{"get", "--raw", "/api/v1/nodes"}},
		"another cluster":   {staging, []string{"get", "--raw", "/api/v1/namespaces/ci/pods"}},
	} {
		if _, errOut, err := runKubectl(t, cfg, c.ref, c.args...); err == nil || !strings.Contains(errOut, "is not allowed to") {
			t.Errorf("%s with the CI key: err %v, stderr %q; want the edge's Forbidden", name, err, errOut)
		}
	}
}
