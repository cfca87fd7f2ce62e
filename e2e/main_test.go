// Package e2e proves the edge end to end: the real binaries (xds, extauthz, keystore), the real
// Envoy, real kube-apiservers and a real Redis, all started once for the package by TestMain.
// Each test makes its own keys and namespaces, so tests run side by side.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/internal/toolbin"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

var (
	platform *localdev.Platform
	keys     *store.Store
	kubectl  string
	client   *http.Client
)

// Marker namespaces exist on one upstream each, so a test can tell which upstream answered.
var markers = map[string]string{
	localdev.ClusterDemo:        "marker-demo",
	localdev.ClusterStaging:     "marker-staging",
	localdev.VirtualClusterName: "marker-vc1",
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "keygate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	progress := io.Discard
	if testing.Verbose() {
		progress = os.Stderr
	}
	// The test IdP as an SSO connector, and identity refresh passes every second, so a test
	// sees a group change at the IdP as soon as the connector's refreshInterval allows.
	// KEYGATE_TEST_REDIS=cluster (make test-cluster) runs the whole suite with Redis as a Redis
	// Cluster of six nodes instead of one server: every script of keystore and extauthz stays in
	// one hash slot, or fails there.
	platform, err = localdev.Start(ctx, localdev.Options{Dir: dir, Progress: progress, SSO: true,
		RedisCluster: redisserver.OnCluster(),
		KeystoreArgs: []string{"--sso-refresh-period", "1s"}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot start the platform: %v\n(logs in %s)\n", err, filepath.Join(dir, "logs"))
		return 1
	}
	defer platform.Stop()
	code := func() int {
		defer stopStaticEdge()
		if kubectl, err = toolbin.Path("kubectl"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		if client, err = platform.HTTPClient(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		rdb, err := platform.RedisClient()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		keys = store.New(rdb)
		for name, ns := range markers {
			a := platform.Clusters[name]
			if name == localdev.VirtualClusterName {
				a = platform.VirtualCluster
			}
			if err := a.CreateNamespace(ctx, ns); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: create marker namespace on %s: %v\n", name, err)
				return 1
			}
		}
		return m.Run()
	}()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: component logs are in %s (kept because tests failed)\n", filepath.Join(dir, "logs"))
		return code
	}
	platform.Stop()
	os.RemoveAll(dir)
	return 0
}

// Refs of the demo targets, by context name.
var (
	demo    = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: localdev.ClusterDemo, Spaces: localdev.SpaceName + "=" + localdev.Project}
	staging = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: localdev.ClusterStaging}
	vc1     = edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: localdev.VirtualClusterHost, Namespace: localdev.VirtualClusterNamespace, VirtualCluster: localdev.VirtualClusterName, Project: localdev.Project}
)

// kubeTargets are the Kubernetes targets with the name of their marker.
var kubeTargets = map[string]edgepath.Ref{
	localdev.ClusterDemo:        demo,
	localdev.ClusterStaging:     staging,
	localdev.VirtualClusterName: vc1,
}

// unique returns a name no other test uses.
func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newKey creates an access key and returns its name and plain key.
func newKey(t *testing.T, spec v1.OwnedAccessKeySpec, mutate ...func(*v1.OwnedAccessKey)) (name, key string) {
	t.Helper()
	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: unique("e2e")}, Spec: spec}
	for _, f := range mutate {
		f(obj)
	}
	key, err := keys.Create(context.Background(), obj)
	if err != nil {
		t.Fatalf("create access key: %v", err)
	}
	return obj.Name, key
}

// kubeconfig writes a kubeconfig with a context per target, using key.
func kubeconfig(t *testing.T, key string) string {
	t.Helper()
	data, err := platform.Kubeconfig(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runKubectl runs the real kubectl against the edge.
func runKubectl(t *testing.T, kubeconfig string, ref edgepath.Ref, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--kubeconfig", kubeconfig, "--context", localdev.ContextName(ref)}, args...)
	cmd := exec.CommandContext(ctx, kubectl, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// get sends a GET through the edge with key (none if empty) and extra headers.
func get(t *testing.T, key, path string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, platform.EdgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range headers {
		req.Header.Add(k, v)
	}
	return do(t, req)
}

// do sends req through the edge and reads the whole response.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// status decodes a Kubernetes Status body, failing the test if it is not one.
func status(t *testing.T, resp *http.Response, body []byte) metav1.Status {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json; body %s", ct, body)
	}
	var s metav1.Status
	if err := json.Unmarshal(body, &s); err != nil || s.Kind != "Status" {
		t.Fatalf("body is not a Kubernetes Status (%v): %s", err, body)
	}
	if int(s.Code) != resp.StatusCode || s.Status != metav1.StatusFailure {
		t.Errorf("Status code %d / status %q, HTTP %d: %s", s.Code, s.Status, resp.StatusCode, body)
	}
	return s
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
