package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// keygateCLI runs bin/keygate with its own config and kubeconfig (KUBECONFIG), as a user would.
type keygateCLI struct {
	t                  *testing.T
	config, kubeconfig string
}

func newKeygateCLI(t *testing.T) *keygateCLI {
	dir := t.TempDir()
	return &keygateCLI{t: t, config: filepath.Join(dir, "keygate", "config.json"), kubeconfig: filepath.Join(dir, "kube", "config")}
}

func (c *keygateCLI) run(stdin, name string, args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KEYGATE_CONFIG="+c.config, "KUBECONFIG="+c.kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func (c *keygateCLI) keygate(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, filepath.Join(platform.Bin, "keygate"), args...)
	if err != nil {
		c.t.Fatalf("keygate %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (c *keygateCLI) kubectl(args ...string) (string, string, error) {
	c.t.Helper()
	return c.run("", kubectl, args...)
}

// TestKeygateCLI is a user's first minutes: log in with a password, see what they can reach,
// write contexts, use plain kubectl through the exec plugin, log out; the key never sits in the
// kubeconfig.
func TestKeygateCLI(t *testing.T) {
	t.Parallel()
	name, password := unique("cli"), "pw-"+randomHex(t, 12)
	// The user's group may read every cluster (the view ClusterRole), as make run's demo user's.
	group := name + "-readers"
	keystoreCmd(t, password+"\n", "create-user", name, "--password-stdin", "--bcrypt-cost", "4", "--groups", group)
	if err := platform.GrantView(context.Background(), group); err != nil {
		t.Fatal(err)
	}
	c := newKeygateCLI(t)
	ca := filepath.Join(platform.Dir, "pki", "edge-ca.crt")
	c.keygate(password+"\n", "login", platform.EdgeURL, "--username", name, "--password-stdin", "--certificate-authority", ca)

	if out := c.keygate("", "list", "clusters"); !strings.Contains(out, "demo") || !strings.Contains(out, "staging") || !strings.Contains(out, "/grafana/demo") {
		t.Errorf("list clusters:\n%s", out)
	}
	c.keygate("", "use", "cluster", "demo")
	out, errOut, err := c.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if err != nil || out != name {
		t.Fatalf("kubectl auth whoami on loft_demo: %q, %v\n%s", out, err, errOut)
	}
	c.keygate("", "use", "vcluster", "vc1", "--cluster", "demo", "--namespace", "vcluster-demo")
	if out, errOut, err := c.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != name {
		t.Fatalf("kubectl auth whoami on the virtual cluster: %q, %v\n%s", out, err, errOut)
	}
	// Plain kubectl through the exec plugin: the upstream sees the user and the group.
	if out, errOut, err := c.kubectl("--context", "loft_demo", "get", "ns", "default", "-o", "name"); err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Errorf("kubectl get ns default on loft_demo: %q, %v\n%s", out, err, errOut)
	}
	kc, _ := os.ReadFile(c.kubeconfig)
	saved, _ := os.ReadFile(c.config)
	for _, ctx := range []string{"loft_demo", "loft-vcluster_vc1_vcluster-demo_demo"} {
		if !strings.Contains(string(kc), "name: "+ctx) {
			t.Errorf("kubeconfig has no context %s:\n%s", ctx, kc)
		}
	}
	if strings.Contains(string(kc), "kgk_") || !strings.Contains(string(saved), "kgk_") {
		t.Errorf("the key must be in the 0600 config, never the kubeconfig:\n%s", kc)
	}
	if st, err := os.Stat(c.config); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode: %v %v", st.Mode(), err)
	}

	reloginRetiresTheOldKey(t, c, name, password)
	c.keygate("", "logout")
	_, errOut, err = c.kubectl("--context", "loft_demo", "get", "ns")
	if err == nil || !strings.Contains(errOut, "keygate login") {
		t.Errorf("after logout kubectl: %v\n%s, want a message to log in", err, errOut)
	}
}

// savedKey is the plain key `keygate login` saved.
func (c *keygateCLI) savedKey() string {
	c.t.Helper()
	saved, _ := os.ReadFile(c.config)
	key := regexp.MustCompile(`kgk_[A-Za-z0-9_-]{43}`).FindString(string(saved))
	if key == "" {
		c.t.Fatalf("no key saved by keygate login:\n%s", saved)
	}
	return key
}

// reloginRetiresTheOldKey: logging in again deletes the login key it replaces at the edge, as
// logout does; a key given with --access-key-stdin is the user's own and stays.
func reloginRetiresTheOldKey(t *testing.T, c *keygateCLI, name, password string) {
	t.Helper()
	ca := filepath.Join(platform.Dir, "pki", "edge-ca.crt")
	works := func(key string) error {
		_, errOut, err := runKubectl(t, kubeconfig(t, key), management, "get", "clusters.management.loft.sh")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	}
	first := c.savedKey()
	c.keygate(password+"\n", "login", platform.EdgeURL, "--username", name, "--password-stdin", "--certificate-authority", ca)
	if err := works(first); err == nil {
		t.Error("the login key a second login replaced still works at the edge")
	}
	own := strings.TrimSpace(c.keygate("", "create", "accesskey", unique("own")))
	c.keygate(own+"\n", "login", platform.EdgeURL, "--access-key-stdin", "--certificate-authority", ca)
	c.keygate(password+"\n", "login", platform.EdgeURL, "--username", name, "--password-stdin", "--certificate-authority", ca)
	if err := works(own); err != nil {
		t.Errorf("a key given with --access-key-stdin, after the next login: %v; want it kept", err)
	}
}

// TestKeygateCLIScopedKey: a key scoped to one virtual cluster lists only it, and `use cluster`
// on anything else says what it can reach.
func TestKeygateCLIScopedKey(t *testing.T) {
	t.Parallel()
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &v1.AccessKeyScope{AllowLoftCLI: true,
		VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "*", VirtualCluster: "vc1"}},
	}})
	c := newKeygateCLI(t)
	ca := filepath.Join(platform.Dir, "pki", "edge-ca.crt")
	c.keygate(key+"\n", "login", platform.EdgeURL, "--access-key-stdin", "--certificate-authority", ca)
	if out := c.keygate("", "list", "clusters"); strings.Contains(out, "demo") || strings.Contains(out, "staging") {
		t.Errorf("list clusters with a key for vc1 only:\n%s", out)
	}
	if out := c.keygate("", "list", "vclusters"); !strings.Contains(out, "vc1") {
		t.Errorf("list vclusters:\n%s", out)
	}
	_, errOut, err := c.run("", filepath.Join(platform.Bin, "keygate"), "use", "cluster", "demo")
	if err == nil || !strings.Contains(errOut, "not one your key can reach") {
		t.Errorf("use cluster demo: %v %s", err, errOut)
	}
	c.keygate("", "use", "vcluster", "vc1", "--cluster", "demo", "--namespace", "vcluster-demo")
	if out, errOut, err := c.kubectl("get", "ns", "default", "-o", "name"); err != nil || strings.TrimSpace(out) != "namespace/default" {
		t.Errorf("kubectl get ns default in vc1: %q %v %s", out, err, errOut)
	}
	// Through the edge with kubectl: out of scope is not found; in scope, a table.
	mgmt := edgepath.Ref{Kind: edgepath.KindManagement}
	if out, errOut, err := runKubectl(t, kubeconfig(t, key), mgmt, "get", "clusters.management.loft.sh", "demo"); err == nil || !strings.Contains(errOut, `"demo" not found`) {
		t.Errorf("kubectl get cluster demo with a key for vc1: %v %s %s", err, out, errOut)
	}
	out, errOut, err := runKubectl(t, kubeconfig(t, platform.AdminKey), mgmt, "get", "clusters.management.loft.sh")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "/kubernetes/cluster/staging") {
		t.Errorf("kubectl get clusters: %v\n%s%s", err, out, errOut)
	}
	t.Logf("kubectl get clusters.management.loft.sh:\n%s", out)
}
