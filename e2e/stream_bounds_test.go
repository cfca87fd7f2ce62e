package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// Issue 19: ext_authz judges a request when it starts, so an open watch or exec outlives its
// key's deletion by at most the route's stream bound (extauthz/README.md, "Open streams"). An
// edge of its own, with bounds of seconds and a stream idle timeout shorter than a test's idle
// pause, shows both the bound and that long-lived routes override the idle timeout, the
// scope filter's cleared route cache notwithstanding (vc1's routes are scoped).
const (
	testSessionBound = 8 * time.Second
	testIdleTimeout  = time.Second
)

func boundedEdge(t *testing.T) *localdev.Edge {
	t.Helper()
	e, err := platform.StartEdge(context.Background(), unique("bounded"),
		"--max-session-duration", testSessionBound.String(), "--max-watch-duration", testSessionBound.String(),
		"--stream-idle-timeout", testIdleTimeout.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	eventually(t, 30*time.Second, "the bounded edge serves demo", func() error {
		req, _ := http.NewRequest(http.MethodGet, e.URL+demo.Prefix()+"readyz", nil)
		req.Header.Set("Authorization", "Bearer "+platform.AdminKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	return e
}

func edgeKubeconfig(t *testing.T, e *localdev.Edge, key string) string {
	t.Helper()
	data, err := platform.KubeconfigAt(e.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStreamBounds(t *testing.T) {
	t.Parallel()
	e := boundedEdge(t)
	t.Run("idle sessions outlive the stream idle timeout", func(t *testing.T) {
		cfg := edgeKubeconfig(t, e, platform.AdminKey)
		for name, target := range streamTargets() {
			ns, pod := stubPod(t, target.api)
			// Quiet for twice the idle timeout, then it answers.
			out, errOut, code := kubectlRun(t, cfg, target.ref, nil, nil, "exec", "-n", ns, pod, "--", "sh", "-c", "sleep 2; echo awake")
			if code != 0 || string(out) != "awake\n" {
				t.Errorf("%s: exec idle for 2s with a %s stream idle timeout: exit %d, %q\n%s", name, testIdleTimeout, code, out, errOut)
			}
		}
	})
	t.Run("a deleted key's exec ends", func(t *testing.T) { testRevokedExec(t, e) })
	t.Run("a deleted key's watch is not resumed", func(t *testing.T) { testRevokedWatch(t, e) })
}

// An exec opened with a key that is then deleted ends by the session bound, and cannot be
// opened again.
func testRevokedExec(t *testing.T, e *localdev.Edge) {
	ns, pod := stubPod(t, platform.Clusters[localdev.ClusterDemo])
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	cfg := edgeKubeconfig(t, e, key)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, cfg, demo, nil, nil, "exec", "-n", ns, pod, "--", "sleep", "infinity")
	var errOut syncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the exec reaches the kubelet", func() error {
		if platform.Kubelet.Sessions(ns, pod) == 0 {
			return fmt.Errorf("no session yet; kubectl: %s", errOut.String())
		}
		return nil
	})
	if err := keys.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	// `sleep infinity` never ends by itself: only the edge's bound can end it.
	if err := cmd.Wait(); ctx.Err() != nil {
		t.Fatalf("the exec of a deleted key was still open after a minute (bound %s): %v", testSessionBound, err)
	}
	_, refused, code := kubectlRun(t, cfg, demo, nil, nil, "exec", "-n", ns, pod, "--", "true")
	if code == 0 || !strings.Contains(refused, "invalid access key") {
		t.Errorf("a new exec with the deleted key: exit %d, want the edge's refusal:\n%s", code, refused)
	}
}

// A watch opened with a key that is then deleted ends by the watch bound, and resuming it is
// refused: clients (informers, kubectl get -w) resume watches, and each resume is judged.
func testRevokedWatch(t *testing.T, e *localdev.Edge) {
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	watch := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, e.URL+demo.Prefix()+"api/v1/namespaces?watch=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		return client.Do(req)
	}
	resp, err := watch()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if resp.StatusCode != http.StatusOK || !sc.Scan() {
		t.Fatalf("watch: HTTP %d, first event: %v", resp.StatusCode, sc.Err())
	}
	if err := keys.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	again, err := watch()
	if err != nil {
		t.Fatal(err)
	}
	defer again.Body.Close()
	if again.StatusCode != http.StatusUnauthorized {
		t.Errorf("resuming the watch of a deleted key: HTTP %d, want 401", again.StatusCode)
	}
}
