package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// TestKubernetesSource runs xds with --source=kubernetes against a real kube-apiserver, and a
// second Envoy: Cluster objects and their Secrets (a client certificate for prod, a
// service-account token for staging) make routes appear, a rotated token changes the credential
// Envoy sends upstream, deleting a Cluster removes its route, and the targets file's targets are
// served beside them. Both clusters are that same kube-apiserver, so the edge's identity is what
// the API server says it is.
func TestKubernetesSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kubeAPI, err := kubetest.Start(ctx, filepath.Join(dir, "kube"))
	if err != nil {
		t.Fatal(err)
	}
	defer kubeAPI.Stop()
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeAPI.Apply(ctx, filepath.Join(root, "manifests", "crds", "targets.keygate.dev_clusters.yaml")); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "platform.kubeconfig")
	if err := kubeAPI.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	// The targets file adds what Kubernetes does not describe.
	targetsFile := filepath.Join(dir, "static.yaml")
	if err := os.WriteFile(targetsFile, fmt.Appendf(nil, "auth: {url: %q}\n", edge.upstreams["auth"].URL), 0o644); err != nil {
		t.Fatal(err)
	}

	// The edge's credentials: for prod a client certificate, for staging a service account's
	// token (as a service-account token Secret holds it), both accepted by the API server.
	putSecret := func(name string, data map[string][]byte) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Data: data}
		secrets := kubeAPI.Client.CoreV1().Secrets("default")
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pair, err := kubeAPI.CA.Client("keygate-edge")
	if err != nil {
		t.Fatal(err)
	}
	putSecret("prod-credentials", map[string][]byte{"ca.crt": kubeAPI.CA.CertPEM, "tls.crt": pair.CertPEM, "tls.key": pair.KeyPEM})
	saToken := func(name string) []byte {
		t.Helper()
		sas := kubeAPI.Client.CoreV1().ServiceAccounts("default")
		if _, err := sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := sas.CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return []byte(tr.Status.Token)
	}
	putSecret("staging-token", map[string][]byte{"ca.crt": kubeAPI.CA.CertPEM, "token": saToken("edge-1")})

	ports, err := proc.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	xdsLog := &logbuf.Buffer{}
	xctx, xcancel := context.WithCancel(ctx)
	xdsDone := make(chan error, 1)
	go func() {
		xdsDone <- Run(xctx, append([]string{
			"--source", "kubernetes", "--kubeconfig", kubeconfig, "--kube-secret-namespace", "default",
			"--targets-file", targetsFile,
			"--grpc-address", addr(0), "--http-address", addr(1), "--listen-address", addr(2),
			"--tls-cert-file", filepath.Join(edge.dir, "serving.crt"), "--tls-key-file", filepath.Join(edge.dir, "serving.key"),
			"--log-format", "text", "--log-level", "debug",
		}, edge.grpcTLSArgs()...), xdsLog)
	}()
	defer func() {
		xcancel()
		if err := <-xdsDone; err != nil {
			t.Errorf("xds: %v", err)
		}
		if t.Failed() {
			t.Logf("xds log:\n%s", xdsLog)
		}
	}()
	if err := proc.WaitFor(ctx, nil, "xds", proc.HTTPReady("http://"+addr(1)+"/readyz")); err != nil {
		t.Fatalf("%v\n%s", err, xdsLog)
	}

	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		t.Fatal(err)
	}
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "xds-kube-test", AdminAddress: addr(3), XDSAddress: addr(0), ExtAuthzAddress: edge.authzAddr, TLS: edge.envoyTLS()})
	if err != nil {
		t.Fatal(err)
	}
	bootstrapFile := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrapFile, bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	envoyProc, err := proc.Start("envoy-kube", dir, nil, envoyBin, "-c", bootstrapFile, "--disable-hot-restart", "--concurrency", "1", "--log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	defer envoyProc.Stop(10 * time.Second)
	if err := proc.WaitFor(ctx, envoyProc, "Envoy", proc.HTTPReady("http://"+addr(3)+"/ready")); err != nil {
		t.Fatal(err)
	}
	p := &platform{edgeURL: "https://" + addr(2), adminURL: "http://" + addr(3), xdsHTTP: "http://" + addr(1), client: edge.client}

	// GET /api/v1/namespaces needs rights the edge's identity lacks: the API server's 403 names
	// the user it authenticated, i.e. the credential Envoy presented.
	const path = "/kubernetes/cluster/prod/api/v1/namespaces"
	seenAs := func(cluster, user string) func() error {
		return func() error {
			path := "/kubernetes/cluster/" + cluster + "/api/v1/namespaces"
			r, err := p.try(path, nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusForbidden || !strings.Contains(string(r.body), fmt.Sprintf(`User \"%s\" cannot list resource \"namespaces\"`, user)) {
				return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
			return nil
		}
	}
	if r := p.get(t, path, nil); r.status != http.StatusNotFound {
		t.Fatalf("before the Cluster exists: GET %s: %d %s, want 404", path, r.status, r.body)
	}

	for name, secret := range map[string]string{"prod": "prod-credentials", "staging": "staging-token"} {
		cluster := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.Group + "/" + v1alpha1.Version, "kind": "Cluster",
			"metadata": map[string]any{"name": name},
			"spec": map[string]any{
				"config": map[string]any{"secretName": secret, "secretNamespace": "default"},
				"server": kubeAPI.URL,
			},
		}}
		if _, err := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	eventually(t, "prod routed with the client certificate", seenAs("prod", "keygate-edge"))
	t.Logf("Clusters created → Envoy routes them: %s", time.Since(start))
	eventually(t, "staging routed with edge-1's token", seenAs("staging", "system:serviceaccount:default:edge-1"))
	if r := p.get(t, "/auth/login", nil); r.status != http.StatusOK || r.echoed(t).Upstream != "auth" {
		t.Errorf("the targets file's /auth/ beside Kubernetes: %d %s", r.status, r.body)
	}

	// A rotated token applies to the next request (it is a header, not a connection's).
	putSecret("staging-token", map[string][]byte{"ca.crt": kubeAPI.CA.CertPEM, "token": saToken("edge-2")})
	start = time.Now()
	eventually(t, "staging routed with edge-2's token after the rotation", seenAs("staging", "system:serviceaccount:default:edge-2"))
	t.Logf("Secret rotated → Envoy sends the new token: %s", time.Since(start))

	if err := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).Delete(ctx, "prod", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	p.waitStatus(t, "prod gone after deleting its Cluster", path, http.StatusNotFound)
	t.Logf("Cluster deleted → Envoy answers 404: %s", time.Since(start))

	stats := p.envoyStats(t)
	for _, prefix := range []string{"cluster_manager.cds", "listener_manager.lds", "http.edge.rds.edge"} {
		if got := stats[prefix+".update_rejected"]; got != 0 {
			t.Errorf("%s.update_rejected = %d, want 0", prefix, got)
		}
	}
}
