package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/toolbin"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// Issue 12: a read-only key opened a shell with kubectl 1.30+'s WebSocket exec (a GET). These
// tests run the real kubectl through the real Envoy. Keys belong to admin, a cluster admin
// upstream, so every refusal seen is the edge's; the demo clusters have no kubelet, so a request
// the edge lets through is answered by the API server with "does not have a host assigned".

// documentedScope reads the first YAML block of the example under "### heading" of
// docs/scopes.md: the key under test is the page's own.
func documentedScope(t *testing.T, heading string) v1.AccessKeyScope {
	t.Helper()
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(root, "docs", "scopes.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(page), "\n### "+heading+"\n")
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("docs/scopes.md has no example %q with a yaml block", heading)
	}
	var s v1.AccessKeyScope
	if err := yaml.UnmarshalStrict([]byte(block), &s); err != nil {
		t.Fatalf("example %q does not parse: %v", heading, err)
	}
	return s
}

// demoPod creates a Running pod object on demo with the cluster's admin client, in a namespace
// of its own. kubectl port-forward wants a Running pod before it asks for the stream.
func demoPod(t *testing.T) (namespace, name string) {
	t.Helper()
	ctx := context.Background()
	demoCluster := platform.Clusters[localdev.ClusterDemo]
	namespace, name = unique("verbs"), "shell"
	if err := demoCluster.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	pods := demoCluster.Admin.CoreV1().Pods(namespace)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sh", Image: "busybox", Command: []string{"sleep", "infinity"}, Stdin: true}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return namespace, name
}

// streamCommands are kubectl's streaming commands, over a WebSocket (kubectl's default) and
// over SPDY (the environment variables turn WebSockets off).
func streamCommands(ns, pod string) map[string]struct {
	args []string
	env  []string
} {
	exec := []string{"exec", "-n", ns, pod, "--", "sh", "-c", "id"}
	attach := []string{"attach", "-n", ns, pod}
	forward := []string{"port-forward", "-n", ns, "pod/" + pod, ":80"}
	spdy := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}
	return map[string]struct {
		args []string
		env  []string
	}{
		"exec, WebSocket":         {exec, nil},
		"exec, SPDY":              {exec, spdy},
		"attach, WebSocket":       {attach, nil},
		"attach, SPDY":            {attach, spdy},
		"port-forward, WebSocket": {forward, nil},
		"port-forward, SPDY":      {forward, []string{"KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
	}
}

// kubectlEnv runs the real kubectl against a target with extra environment variables, at -v=4
// so that its fallback from a refused WebSocket to SPDY is printed with the refusal.
func kubectlEnv(t *testing.T, cfg string, ref edgepath.Ref, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--kubeconfig", cfg, "--context", localdev.ContextName(ref), "-v=4"}, args...)
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = append(os.Environ(), env...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	err := cmd.Run()
	return errOut.String(), err
}

// The documented read-only key cannot exec, attach or port-forward, over either protocol: the
// edge refuses with a Status that kubectl prints, naming the key and the create it lacks.
func TestExecRefusedForReadOnlyKey(t *testing.T) {
	t.Parallel()
	ns, pod := demoPod(t)
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: ptr(documentedScope(t, "A read-only key"))})
	cfg := kubeconfig(t, key)
	subresource := map[string]string{"exec": "pods/exec", "attach": "pods/attach", "port-forward": "pods/portforward"}
	for what, c := range streamCommands(ns, pod) {
		t.Run(what, func(t *testing.T) {
			errOut, err := kubectlEnv(t, cfg, demo, c.env, c.args...)
			command, _, _ := strings.Cut(what, ",")
			refusal := `access key "` + name + `" is not allowed to create ` + subresource[command] + ` "` + pod + `" in namespace "` + ns + `" on cluster "demo"`
			if err == nil || !strings.Contains(errOut, refusal) {
				t.Fatalf("kubectl %s with a read-only key: err %v; want the edge's refusal %q in:\n%s", what, err, refusal, errOut)
			}
			// Over a WebSocket, kubectl falls back to SPDY when the upgrade fails: the WebSocket
			// itself must have been refused by the edge, not merely the fallback.
			if c.env == nil && !strings.Contains(errOut, "fallback") {
				t.Errorf("kubectl %s: no fallback from the WebSocket; stderr:\n%s", what, errOut)
			}
			// The fallback's log line quotes the refusal with escaped quotes.
			if c.env == nil && strings.Count(strings.ReplaceAll(errOut, `\"`, `"`), refusal) < 2 {
				t.Errorf("kubectl %s: the WebSocket and the SPDY fallback should both be refused by the edge; stderr:\n%s", what, errOut)
			}
		})
	}
}

// A key with create on pods/exec, attach and portforward (next to reads) gets through the edge:
// the API server answers, here that the pod has no node.
func TestExecAllowedWithCreate(t *testing.T) {
	t.Parallel()
	ns, pod := demoPod(t)
	s := documentedScope(t, "A read-only key")
	s.Rules = append(s.Rules, v1.AccessKeyScopeRule{Verbs: []string{"create"},
		Resources: []v1.GroupResources{{Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}}}})
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &s})
	cfg := kubeconfig(t, key)
	for what, c := range streamCommands(ns, pod) {
		t.Run(what, func(t *testing.T) {
			errOut, err := kubectlEnv(t, cfg, demo, c.env, c.args...)
			if err == nil || strings.Contains(errOut, "is not allowed to") || !strings.Contains(errOut, "does not have a host assigned") {
				t.Errorf("kubectl %s with create on the streams: err %v; want the API server's answer, not the edge's refusal:\n%s", what, err, errOut)
			}
		})
	}
}

// The attacker's requests themselves, as raw HTTP/1.1 upgrades: refused by the edge with a 403
// Status for the read-only key (including the kubelet's exec through nodes/proxy), passed to
// the API server for a key with create.
func TestExecUpgradeRequests(t *testing.T) {
	t.Parallel()
	ns, pod := demoPod(t)
	_, readOnly := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: ptr(documentedScope(t, "A read-only key"))})
	_, everything := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"*"}}}}})
	websocket := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}
	execPath := demo.Prefix() + "api/v1/namespaces/" + ns + "/pods/" + pod + "/exec?command=sh&stdin=true&stdout=true"
	kubeletExec := demo.Prefix() + "api/v1/nodes/ghost/proxy/exec/" + ns + "/" + pod + "/sh?command=sh"
	for path, want := range map[string]string{execPath: "create pods/exec", kubeletExec: `create nodes/proxy "ghost"`} {
		resp, body := upgrade(t, readOnly, path, websocket)
		if s := status(t, resp, body); resp.StatusCode != 403 || !strings.Contains(s.Message, "is not allowed to "+want) {
			t.Errorf("WebSocket GET %s with a read-only key: HTTP %d %q; want the edge's 403 for %s", path, resp.StatusCode, s.Message, want)
		}
	}
	resp, body := upgrade(t, everything, execPath, websocket)
	if s := status(t, resp, body); resp.StatusCode == 403 || !strings.Contains(s.Message, "does not have a host assigned") {
		t.Errorf("WebSocket exec with every verb: HTTP %d %q; want the API server's answer", resp.StatusCode, s.Message)
	}
}

// upgrade sends a GET asking for a connection upgrade over HTTP/1.1 (HTTP/2 has no Upgrade).
func upgrade(t *testing.T, key, path string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	tr := client.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	req, err := http.NewRequest(http.MethodGet, platform.EdgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// The CI key of docs/scopes.md: "no cluster-scoped objects: not even the Namespace object ci
// itself". kubectl reads an object before it patches or deletes it, so the writes are sent as
// the raw requests a client could make; the delete is a server-side dry run, so a regression
// would not take the namespace from the other tests.
func TestExampleCIKeyNamespaceObject(t *testing.T) {
	t.Parallel()
	if err := platform.Clusters[localdev.ClusterDemo].CreateNamespace(context.Background(), "ci"); err != nil {
		t.Fatal(err)
	}
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: ptr(documentedScope(t, "A CI key for one namespace of one cluster"))})
	refusal := func(verb string) string {
		return `access key "` + name + `" is not allowed to ` + verb + ` namespaces "ci" on cluster "demo"`
	}
	nsPath := demo.Prefix() + "api/v1/namespaces/ci"
	for verb, r := range map[string]struct{ method, path, contentType, body string }{
		"patch":  {"PATCH", nsPath, "application/merge-patch+json", `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`},
		"delete": {"DELETE", nsPath + "?dryRun=All", "", ""},
	} {
		resp, body := send(t, key, r.method, r.path, r.contentType, r.body)
		if s := status(t, resp, body); resp.StatusCode != 403 || s.Message != refusal(verb) {
			t.Errorf("%s namespace ci with the CI key: HTTP %d %q; want 403 %q", r.method, resp.StatusCode, s.Message, refusal(verb))
		}
	}
	cfg := kubeconfig(t, key)
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "namespace", "ci"); err == nil || !strings.Contains(errOut, refusal("get")) {
		t.Errorf("kubectl get namespace ci with the CI key: err %v, stderr %q; want %q", err, errOut, refusal("get"))
	}
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "configmaps", "-n", "ci"); err != nil {
		t.Errorf("configmaps in ci with the CI key: %v\n%s", err, errOut)
	}
}

func ptr[T any](v T) *T { return &v }
