package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// The prefix is stripped: a prefix without its trailing slash reaches the upstream's root, and
// a query string survives.
func TestPrefixIsStripped(t *testing.T) {
	t.Parallel()
	resp, body := get(t, platform.AdminKey, "/kubernetes/cluster/demo", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"/api"`) {
		t.Errorf("GET /kubernetes/cluster/demo: HTTP %d, want the API server's root path list: %s", resp.StatusCode, body)
	}
	resp, body = get(t, platform.AdminKey, "/grafana/demo/api/search?query=cpu&limit=2", nil)
	var seen localdev.GrafanaRequest
	if resp.StatusCode != 200 || json.Unmarshal(body, &seen) != nil {
		t.Fatalf("grafana: HTTP %d: %s", resp.StatusCode, body)
	}
	if seen.Path != "/api/search" || seen.Query != "query=cpu&limit=2" {
		t.Errorf("grafana saw path %q query %q, want /api/search and query=cpu&limit=2", seen.Path, seen.Query)
	}
}

// Grafana gets the key's user in its auth-proxy header, and never the key or client-sent
// identity headers.
func TestGrafanaGetsUserNotKey(t *testing.T) {
	t.Parallel()
	user := unique("grafana-user")
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: user})
	resp, body := get(t, key, "/grafana/demo/api/health", map[string]string{
		localdev.GrafanaUserHeader: "admin",
		"X-Remote-User":            "admin",
		"X-Remote-Group":           "system:masters",
		"Impersonate-User":         "admin",
		"Impersonate-Extra-Scopes": "all",
	})
	var seen localdev.GrafanaRequest
	if resp.StatusCode != 200 || json.Unmarshal(body, &seen) != nil {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	if seen.Server != "grafana-demo" || seen.Path != "/api/health" {
		t.Errorf("answered by %q for path %q, want grafana-demo /api/health", seen.Server, seen.Path)
	}
	if seen.User != user {
		t.Errorf("%s = %q, want %q", localdev.GrafanaUserHeader, seen.User, user)
	}
	for name, values := range seen.Headers {
		lower := strings.ToLower(name)
		if lower == "authorization" || strings.HasPrefix(lower, "x-remote-") || strings.HasPrefix(lower, "impersonate-") {
			t.Errorf("upstream received %s: %v", name, values)
		}
		for _, v := range values {
			if strings.Contains(v, key) {
				t.Errorf("upstream received the access key in header %s", name)
			}
		}
	}
}

// Paths that name no target get 404, but only after the key is checked, so that nobody can
// find out which clusters exist without a key.
func TestUnknownTargets(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/grafana/staging/api/health", "/grafana/nope/", "/kubernetes/cluster/nope/api", "/kubernetes/virtualcluster/demo/vcluster-demo/nope/api", "/nothing-here"} {
		resp, body := get(t, platform.AdminKey, path, nil)
		if resp.StatusCode != 404 {
			t.Errorf("%s with a valid key: HTTP %d, want 404: %s", path, resp.StatusCode, body)
			continue
		}
		if s := status(t, resp, body); s.Reason != metav1.StatusReasonNotFound {
			t.Errorf("%s: Status reason %q, want NotFound", path, s.Reason)
		}
		if resp, body := get(t, "", path, nil); resp.StatusCode != 401 {
			t.Errorf("%s without a key: HTTP %d, want 401: %s", path, resp.StatusCode, body)
		}
	}
}

// A watch through the edge keeps streaming past Envoy's default 15 s route timeout.
func TestWatchOutlivesRouteTimeout(t *testing.T) {
	t.Parallel()
	ns := unique("watch")
	ctx := context.Background()
	demoAPI := platform.Clusters[localdev.ClusterDemo]
	if err := demoAPI.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	cfg := kubeconfig(t, platform.AdminKey)
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, kubectl, "--kubeconfig", cfg, "--context", localdev.ContextName(demo),
		"get", "pods", "-n", ns, "-w", "-o", "name")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	// Longer than Envoy's default route timeout (15 s), with the watch idle all along.
	time.Sleep(20 * time.Second)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "after-timeout"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}}},
	}
	if _, err := demoAPI.Admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the watch ended before the pod was created after 20s; kubectl: %s", stderr.String())
			}
			if line == "pod/after-timeout" {
				return
			}
		case <-deadline:
			t.Fatalf("the pod created after 20s never showed in the watch; kubectl: %s", stderr.String())
		}
	}
}

// Adding a cluster to the targets file makes its route appear without restarting Envoy;
// removing it makes it disappear; a broken file changes nothing.
func TestTargetsFileChanges(t *testing.T) {
	probe := "/kubernetes/cluster/extra/api/v1/namespaces/" + markers[localdev.ClusterStaging]
	if resp, _ := get(t, platform.AdminKey, probe, nil); resp.StatusCode != 404 {
		t.Fatalf("cluster extra exists before the test: HTTP %d", resp.StatusCode)
	}
	envoyStarts := envoyUptime(t)

	// "extra" is another name for the staging API server: the marker proves who answered.
	if err := platform.EditTargets(func(ts *localdev.Targets) {
		ts.Clusters = append(ts.Clusters, platform.ClusterTarget("extra", platform.Clusters[localdev.ClusterStaging]))
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "route for added cluster extra", func() error {
		if resp, body := get(t, platform.AdminKey, probe, nil); resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return nil
	})

	// A broken file is refused (xds counts it as an invalid reload): every route keeps serving.
	invalid := xdsReloads(t, "invalid")
	if err := platform.WriteTargetsFileRaw([]byte("clusters:\n  - name: [broken\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "xds refusing the broken targets file", func() error {
		if n := xdsReloads(t, "invalid"); n <= invalid {
			return fmt.Errorf("invalid reloads still %v", n)
		}
		return nil
	})
	for _, path := range []string{probe, "/kubernetes/cluster/demo/api/v1/namespaces/marker-demo"} {
		if resp, body := get(t, platform.AdminKey, path, nil); resp.StatusCode != 200 {
			t.Errorf("after a broken targets file, %s: HTTP %d: %s", path, resp.StatusCode, body)
		}
	}

	if err := platform.EditTargets(func(ts *localdev.Targets) {
		ts.Clusters = ts.Clusters[:len(ts.Clusters)-1]
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "route for removed cluster extra gone", func() error {
		if resp, body := get(t, platform.AdminKey, probe, nil); resp.StatusCode != 404 {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	if resp, body := get(t, platform.AdminKey, "/kubernetes/cluster/demo/api/v1/namespaces/marker-demo", nil); resp.StatusCode != 200 {
		t.Errorf("demo after the edits: HTTP %d: %s", resp.StatusCode, body)
	}
	if now := envoyUptime(t); now < envoyStarts {
		t.Errorf("Envoy restarted during the test (uptime %ds, was %ds)", now, envoyStarts)
	}
}

// With extauthz down, the edge fails closed: 503, never 200.
func TestExtAuthzDownFailsClosed(t *testing.T) {
	path := "/kubernetes/cluster/demo/api/v1/namespaces/marker-demo"
	if resp, body := get(t, platform.AdminKey, path, nil); resp.StatusCode != 200 {
		t.Fatalf("before stopping extauthz: HTTP %d: %s", resp.StatusCode, body)
	}
	platform.StopExtAuthz()
	t.Cleanup(func() {
		if err := platform.StartExtAuthz(context.Background()); err != nil {
			t.Fatalf("restart extauthz: %v", err)
		}
	})
	for i := range 20 {
		resp, body := get(t, platform.AdminKey, path, nil)
		if resp.StatusCode != 503 {
			t.Fatalf("request %d with extauthz down: HTTP %d, want 503: %s", i, resp.StatusCode, body)
		}
	}
	if err := platform.StartExtAuthz(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "edge serving again after extauthz restarted", func() error {
		if resp, body := get(t, platform.AdminKey, path, nil); resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return nil
	})
}

// Envoy accepted every configuration xds sent: no NACK for listeners, routes or clusters.
// (Sequential tests run before the parallel ones, so this sees the targets-file edits above.)
func TestEnvoyAcceptedEveryConfig(t *testing.T) {
	stats := envoyStats(t, "update_")
	for _, prefix := range []string{"cluster_manager.cds.", "listener_manager.lds.", "http.edge.rds.edge."} {
		if n, ok := stats[prefix+"update_rejected"]; !ok || n != 0 {
			t.Errorf("%supdate_rejected = %d (present %v), want 0", prefix, n, ok)
		}
		if stats[prefix+"update_success"] == 0 {
			t.Errorf("%supdate_success = 0: Envoy never took a config", prefix)
		}
	}
}

// xdsReloads reads xds's count of configuration reloads with the given result.
func xdsReloads(t *testing.T, result string) float64 {
	t.Helper()
	resp, err := client.Get(platform.XDSMetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := `keygate_xds_config_reloads_total{result="` + result + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	t.Fatalf("xds exposes no %s", strings.TrimSpace(prefix))
	return 0
}

// envoyStats reads Envoy's counters whose names match filter (a regex), zeros included.
func envoyStats(t *testing.T, filter string) map[string]int64 {
	t.Helper()
	stats, err := platform.EnvoyStats(filter)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func envoyUptime(t *testing.T) int64 {
	t.Helper()
	n, ok := envoyStats(t, "^server.uptime$")["server.uptime"]
	if !ok {
		t.Fatal("Envoy reports no server.uptime")
	}
	return n
}
