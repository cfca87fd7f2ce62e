package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// TestVirtualClusterThroughEnvoy runs xds with --source=kubernetes against a platform
// kube-apiserver holding a Cluster, whose Secret gives the edge a client certificate in a
// connected cluster (a second kube-apiserver). A vcluster Service and its vc-<name> Secret
// appearing in the connected cluster make the virtual cluster reachable through a real Envoy at
// /kubernetes/virtualcluster/<cluster>/<ns>/<name>/, with the vcluster's admin certificate
// and the namespace's project on the route; deleting the Service removes the route.
//
// The virtual cluster itself is an HTTPS echo server whose certificate, like vcluster's, names
// the Service's in-cluster name (vc1.team-a.svc) and which requires a client certificate from
// its own CA: the edge must verify the default server name and present the Secret's credential.
func TestVirtualClusterThroughEnvoy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := time.Now()
	platformAPI, err := kubetest.Start(ctx, filepath.Join(dir, "kube"))
	if err != nil {
		t.Fatal(err)
	}
	defer platformAPI.Stop()
	connected, err := platformAPI.StartPeer(ctx, "connected")
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Stop()
	t.Logf("platform and connected kube-apiservers started: %s", time.Since(start))
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := platformAPI.Apply(ctx, filepath.Join(root, "manifests", "crds", "targets.keygate.dev_clusters.yaml")); err != nil {
		t.Fatal(err)
	}
	// The edge's identity in the connected cluster may discover vclusters, nothing more.
	if err := connected.Apply(ctx, filepath.Join(root, "manifests", "rbac", "connected-cluster.yaml")); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "platform.kubeconfig")
	if err := platformAPI.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}

	// The stand-in virtual cluster.
	vcCA, err := pki.NewCA("vcluster vc1 CA")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := vcCA.Server("vc1", "vc1", "vc1.team-a", "vc1.team-a.svc", "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := serving.TLS()
	if err != nil {
		t.Fatal(err)
	}
	vc := httptest.NewUnstartedServer(echo("vc1"))
	vc.TLS = &tls.Config{Certificates: []tls.Certificate{tc}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: vcCA.Pool()}
	vc.StartTLS()
	defer vc.Close()
	vcAdmin, err := vcCA.Client("vcluster-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}

	// The connected cluster's Cluster object, with the edge's client certificate.
	edgePair, err := platformAPI.CA.Client("keygate-edge")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := platformAPI.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "conn-credentials"},
		Data: map[string][]byte{"ca.crt": platformAPI.CA.CertPEM, "tls.crt": edgePair.CertPEM, "tls.key": edgePair.KeyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.Group + "/" + v1alpha1.Version, "kind": "Cluster",
		"metadata": map[string]any{"name": "conn"},
		"spec": map[string]any{
			"config": map[string]any{"secretName": "conn-credentials", "secretNamespace": "default"},
			"server": connected.URL,
		},
	}}
	if _, err := platformAPI.Dynamic.Resource(v1alpha1.ClusterResource).Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// xds and a second Envoy.
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
			"--grpc-address", addr(0), "--http-address", addr(1), "--listen-address", addr(2),
			"--tls-cert-file", filepath.Join(edge.dir, "serving.crt"), "--tls-key-file", filepath.Join(edge.dir, "serving.key"),
			"--log-format", "text", "--log-level", "debug",
			// The connected cluster has no vcluster Service at first: it is polled.
			"--discovery-poll-interval", "300ms",
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
	// ext_authz as the package's fake, telling the upstream the route's project too.
	authzListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	authz, err := edge.grpcServer()
	if err != nil {
		t.Fatal(err)
	}
	authv3.RegisterAuthorizationServer(authz, projectAuthz{})
	go authz.Serve(authzListener)
	defer authz.Stop()
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "xds-vcluster-test", AdminAddress: addr(3), XDSAddress: addr(0), ExtAuthzAddress: authzListener.Addr().String(), TLS: edge.envoyTLS()})
	if err != nil {
		t.Fatal(err)
	}
	bootstrapFile := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootstrapFile, bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	envoyProc, err := proc.Start("envoy-vcluster", dir, nil, envoyBin, "-c", bootstrapFile, "--disable-hot-restart", "--concurrency", "1", "--log-level", "info")
	if err != nil {
		t.Fatal(err)
	}
	defer envoyProc.Stop(10 * time.Second)
	if err := proc.WaitFor(ctx, envoyProc, "Envoy", proc.HTTPReady("http://"+addr(3)+"/ready")); err != nil {
		t.Fatal(err)
	}
	p := &platform{edgeURL: "https://" + addr(2), adminURL: "http://" + addr(3), xdsHTTP: "http://" + addr(1), client: edge.client}
	const path = "/kubernetes/virtualcluster/conn/team-a/vc1/api/v1/namespaces?limit=1"
	if r := p.get(t, path, nil); r.status != http.StatusNotFound {
		t.Fatalf("before the vcluster exists: GET %s: %d %s, want 404", path, r.status, r.body)
	}

	// vcluster appears in the connected cluster: namespace (with Loft's project label),
	// Service, kubeconfig Secret (server localhost, as vcluster writes it).
	core := connected.Client.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{v1alpha1.LabelProject: "payments"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["my-vcluster"] = &clientcmdapi.Cluster{Server: "https://localhost:8443", CertificateAuthorityData: vcCA.CertPEM}
	kc.AuthInfos["my-vcluster"] = &clientcmdapi.AuthInfo{ClientCertificateData: vcAdmin.CertPEM, ClientKeyData: vcAdmin.KeyPEM}
	kc.Contexts["my-vcluster"] = &clientcmdapi.Context{Cluster: "my-vcluster", AuthInfo: "my-vcluster"}
	kc.CurrentContext = "my-vcluster"
	kcData, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Secrets("team-a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vc-vc1"}, Data: map[string][]byte{
		"config": kcData, "certificate-authority": vcCA.CertPEM, "client-certificate": vcAdmin.CertPEM, "client-key": vcAdmin.KeyPEM,
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Exposed as a LoadBalancer Service whose status (written here as a load-balancer
	// controller would) is vc's address: the only address discovery takes.
	vcPort := vc.Listener.Addr().(*net.TCPAddr).Port
	exposeVCluster(ctx, t, core, vcPort)
	start = time.Now()
	p.waitStatus(t, "the virtual cluster reachable through the edge", path, http.StatusOK)
	t.Logf("vcluster Service created → a poll finds it → Envoy routes it: %s", time.Since(start))
	if !strings.Contains(xdsLog.String(), "vcluster Service found; watching the connected cluster") {
		t.Errorf("no log of the switch to watching:\n%s", xdsLog)
	}
	if n := p.metric(t, `keygate_xds_kube_discovery_clusters{mode="watched"}`); n != 1 {
		t.Errorf("%v connected clusters watched with a vcluster, want 1", n)
	}
	e := p.get(t, path, nil).echoed(t)
	if e.Upstream != "vc1" || e.RequestURI != "/api/v1/namespaces?limit=1" || e.ClientCN != "vcluster-admin" {
		t.Errorf("upstream saw %+v, want vc1, /api/v1/namespaces?limit=1, client certificate vcluster-admin", e)
	}
	if got := e.Header.Get("X-Test-Target"); !strings.Contains(got, `virtual cluster "vc1" in namespace "team-a" of cluster "conn" /kubernetes/virtualcluster/conn/team-a/vc1/`) {
		t.Errorf("ext_authz was told %q, want the virtual cluster and its prefix", got)
	}
	if got := e.Header.Get("X-Test-Project"); got != "payments" {
		t.Errorf("ext_authz was told project %q, want payments (the namespace's label)", got)
	}

	if err := core.Services("team-a").Delete(ctx, "vc1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	p.waitStatus(t, "the virtual cluster gone after deleting its Service", path, http.StatusNotFound)
	t.Logf("vcluster Service deleted → Envoy answers 404: %s", time.Since(start))
	eventually(t, "the connected cluster polled again", func() error {
		if n := p.metric(t, `keygate_xds_kube_discovery_clusters{mode="polled"}`); n != 1 {
			return fmt.Errorf("%v connected clusters polled, want 1", n)
		}
		return nil
	})

	// Created again while polled: a poll finds it again.
	exposeVCluster(ctx, t, core, vcPort)
	p.waitStatus(t, "the virtual cluster reachable again", path, http.StatusOK)
	if n := p.metric(t, `keygate_xds_kube_discovery_mode_changes_total{mode="watched"}`); n != 2 {
		t.Errorf("%v switches to watched, want 2", n)
	}

	stats := p.envoyStats(t)
	for _, prefix := range []string{"cluster_manager.cds", "listener_manager.lds", "http.edge.rds.edge"} {
		if got := stats[prefix+".update_rejected"]; got != 0 {
			t.Errorf("%s.update_rejected = %d, want 0", prefix, got)
		}
	}
}

// projectAuthz is fakeAuthz that also passes the route's project (its context extension) to
// the upstream as x-test-project.
type projectAuthz struct{ fakeAuthz }

func (a projectAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	resp, err := a.fakeAuthz.Check(ctx, req)
	if ok := resp.GetOkResponse(); ok != nil {
		project := req.GetAttributes().GetContextExtensions()[edgepath.ExtProject]
		ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-test-project", Value: project}})
	}
	return resp, err
}

// exposeVCluster creates vc1's vcluster Service in team-a as a LoadBalancer whose status
// (written here as a load-balancer controller would) is 127.0.0.1:port: the only address
// discovery takes.
func exposeVCluster(ctx context.Context, t *testing.T, core corev1client.CoreV1Interface, port int) {
	t.Helper()
	svc, err := core.Services("team-a").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "vc1", Labels: map[string]string{"app": "vcluster", "release": "vc1"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "https", Port: int32(port)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "127.0.0.1"}}
	if _, err := core.Services("team-a").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
