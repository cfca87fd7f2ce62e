package kube_test

import (
	"bytes"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// edgeUser is the edge's identity in the connected clusters, as manifests/rbac/connected-cluster.yaml
// names it.
const edgeUser = "keygate-edge"

var peerCount int

// connected starts a connected cluster (a second kube-apiserver on the package's etcd) with
// manifests/rbac/connected-cluster.yaml applied, stopped when the test ends.
func (e *env) connected() *kubetest.Server {
	e.t.Helper()
	peerCount++
	start := time.Now()
	peer, err := kubeAPI.StartPeer(e.ctx, "connected-"+strconv.Itoa(peerCount))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("connected cluster's kube-apiserver started: %s", time.Since(start))
	e.t.Cleanup(peer.Stop)
	root, err := toolbin.RepoRoot()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := peer.Apply(e.ctx, filepath.Join(root, "manifests", "rbac", "connected-cluster.yaml")); err != nil {
		e.t.Fatal(err)
	}
	return peer
}

// connectedCluster writes a Cluster prefix+name for the connected cluster peer, whose Secret
// holds a client certificate for the edge's identity there.
func (e *env) connectedCluster(name string, server string) {
	e.t.Helper()
	e.tlsSecret(name, edgeUser)
	c := e.cluster(name, name)
	c.Spec.Server = server
	e.putCluster(c)
}

// vcluster writes, in the connected cluster peer, what vcluster's chart leaves there: namespace
// ns, Service name (labels app=vcluster, release=name; edit, if set, changes it), and Secret
// vc-<name> with a kubeconfig for https://localhost:8443 (the CA's and a fresh client
// certificate for user vcUser). Unless server is empty, the Service is a LoadBalancer whose
// status (written as a load-balancer controller would) has server's host and port: the one
// address discovery takes. It returns the client certificate.
func (e *env) vcluster(peer *kubetest.Server, ns, name, server string, edit func(*corev1.Service)) []byte {
	e.t.Helper()
	if _, err := peer.Client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "vcluster", "release": name}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}
	if server != "" {
		e.exposeAt(svc, server)
	}
	if edit != nil {
		edit(svc)
	}
	services := peer.Client.CoreV1().Services(ns)
	created, err := services.Create(e.ctx, svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if server != "" {
		created.Status = svc.Status
		if _, err := services.UpdateStatus(e.ctx, created, metav1.UpdateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.vclusterSecret(peer, ns, name, "https://localhost:8443")
}

// exposeAt makes svc a LoadBalancer Service whose ingress is server's host, on server's port.
func (e *env) exposeAt(svc *corev1.Service, server string) {
	e.t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		e.t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		e.t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.Ports[0].Port = int32(port)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: u.Hostname()}}
}

// vclusterSecret creates or replaces the Secret vc-<name> with a kubeconfig for server and a
// fresh client certificate, and returns the certificate.
func (e *env) vclusterSecret(peer *kubetest.Server, ns, name, server string) []byte {
	e.t.Helper()
	pair, err := e.ca.Client("vcluster-admin")
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["my-vcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: e.ca.CertPEM}
	cfg.AuthInfos["my-vcluster"] = &clientcmdapi.AuthInfo{ClientCertificateData: pair.CertPEM, ClientKeyData: pair.KeyPEM}
	cfg.Contexts["my-vcluster"] = &clientcmdapi.Context{Cluster: "my-vcluster", AuthInfo: "my-vcluster"}
	cfg.CurrentContext = "my-vcluster"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.putPeerSecret(peer, ns, "vc-"+name, map[string][]byte{
		"config": data, "certificate-authority": e.ca.CertPEM, "client-certificate": pair.CertPEM, "client-key": pair.KeyPEM,
	})
	return pair.CertPEM
}

func (e *env) putPeerSecret(peer *kubetest.Server, ns, name string, data map[string][]byte) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	secrets := peer.Client.CoreV1().Secrets(ns)
	if _, err := secrets.Update(e.ctx, s, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		if _, err := secrets.Create(e.ctx, s, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
}

func vclusterPrefix(cluster, ns, name string) string {
	return edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: cluster, Namespace: ns, VirtualCluster: name}.Prefix()
}

func has(prefix string) func(map[string]model.Target) bool {
	return func(ts map[string]model.Target) bool { _, ok := ts[prefix]; return ok }
}

// TestVirtualClusterDiscovery runs the source against the platform's API server and a connected
// cluster (a second kube-apiserver) whose Cluster's Secret gives the edge a client certificate
// there: a vcluster Service and its vc-<name> Secret become a virtualcluster target with the
// namespace's project; a rotated Secret changes the credential; a broken Secret and an
// unreachable vcluster are reported without taking the good one down; a deleted Service
// removes its target; a connected cluster that cannot be reached neither delays the others nor
// loses its virtual clusters.
func TestVirtualClusterDiscovery(t *testing.T) {
	e := newEnv(t)
	peer := e.connected()
	// The stand-in virtual cluster: any HTTPS server will do for the model; the platform's own
	// API server is one.
	vcURL := kubeAPI.URL

	// A connected cluster that cannot be reached (nothing listens there), created first: its
	// discovery must not hold up the others.
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e.connectedCluster("dead", fmt.Sprintf("https://127.0.0.1:%d", port))

	r := e.start(kube.Options{})
	cluster := e.prefix + "conn"
	if _, err := peer.Client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{v1alpha1.LabelProject: "payments"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cert := e.vcluster(peer, "team-a", "vc1", vcURL, nil)
	start := time.Now()
	e.connectedCluster("conn", peer.URL)
	vc1 := vclusterPrefix(cluster, "team-a", "vc1")
	got := r.waitFor(vc1, has(vc1))
	t.Logf("Cluster created (vcluster already there) → model with the virtual cluster: %s", time.Since(start))
	vt := got[vc1]
	if vt.Ref.Project != "payments" {
		t.Errorf("project %q, want payments (the namespace's label)", vt.Ref.Project)
	}
	if u := vt.Upstream; u.URL.String() != vcURL || !bytes.Equal(u.CA, kubeAPI.CA.CertPEM) || !bytes.Equal(u.ClientCert, cert) || u.ServerName != "vc1.team-a.svc" {
		t.Errorf("upstream %s (server name %q), want %s with the vc-vc1 Secret's CA and certificate, server name vc1.team-a.svc", u.URL, u.ServerName, vcURL)
	}
	if _, ok := got[clusterPrefix(cluster)]; !ok {
		t.Errorf("the connected cluster's own target is missing: %v", prefixes(got))
	}
	r.waitLog("virtual-cluster discovery synced", "cluster="+cluster)
	r.waitLog("cannot list or watch the connected cluster to discover virtual clusters", "cluster="+e.prefix+"dead")

	// A vcluster appearing later in the running cluster.
	start = time.Now()
	e.vcluster(peer, "team-b", "vc2", vcURL, nil)
	vc2 := vclusterPrefix(cluster, "team-b", "vc2")
	r.waitFor(vc2, has(vc2))
	t.Logf("vcluster Service and Secret created → model with it: %s", time.Since(start))

	// The Secret rotated.
	start = time.Now()
	rotated := e.vclusterSecret(peer, "team-a", "vc1", "https://localhost:8443")
	r.waitFor("vc1's rotated certificate", func(ts map[string]model.Target) bool {
		t, ok := ts[vc1]
		return ok && bytes.Equal(t.Upstream.ClientCert, rotated)
	})
	t.Logf("vc-<name> Secret rotated → model with the new certificate: %s", time.Since(start))

	// vc2's Secret broken: reported, its last good version kept, vc1 unaffected.
	e.putPeerSecret(peer, "team-b", "vc-vc2", map[string][]byte{"certificate-authority": []byte("not PEM")})
	r.waitLog("virtual cluster refused; its last good version stays in force", "cluster="+cluster, "virtual_cluster=team-b/vc2", "holds no credential")
	if v := r.errorGauge(cluster, edgepath.KindVirtualCluster); v != 1 {
		t.Errorf("virtualcluster error gauge of %s = %v, want 1", cluster, v)
	}
	// A vcluster that is not exposed: no LoadBalancer address.
	e.vcluster(peer, "team-c", "vc3", "", nil)
	r.waitLog("virtual cluster refused; it is not served", "virtual_cluster=team-c/vc3", "not reachable from the edge")
	got = r.waitFor("both vc1 and vc2 still served", func(ts map[string]model.Target) bool {
		return has(vc1)(ts) && has(vc2)(ts) && r.errorGauge(cluster, edgepath.KindVirtualCluster) == 2
	})
	if _, ok := got[vclusterPrefix(cluster, "team-c", "vc3")]; ok {
		t.Error("vc3, not exposed, is served")
	}
	if len(r.invalid) < 2 {
		t.Errorf("invalid called %d times, want at least 2 (vc2, vc3)", len(r.invalid))
	}

	// The Service deleted removes the target, broken or not.
	start = time.Now()
	if err := peer.Client.CoreV1().Services("team-b").Delete(e.ctx, "vc2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor("no vc2", func(ts map[string]model.Target) bool { return !has(vc2)(ts) && has(vc1)(ts) })
	t.Logf("vcluster Service deleted → model without it: %s", time.Since(start))
	r.waitLog("virtual cluster's Service deleted; its target is removed", "virtual_cluster=team-b/vc2")
	if v := r.errorGauge(cluster, edgepath.KindVirtualCluster); v != 1 {
		t.Errorf("virtualcluster error gauge of %s = %v after deleting vc2, want 1 (vc3)", cluster, v)
	}

	// The connected cluster stopped: its virtual clusters keep their routes.
	peer.Stop()
	r.waitLog("cannot list or watch the connected cluster to discover virtual clusters", "cluster="+cluster)
	e.putCluster(e.cluster("other", "conn")) // any change: a new model is built
	got = r.waitFor("a model after the connected cluster stopped", has(clusterPrefix(e.prefix+"other")))
	if !has(vc1)(got) {
		t.Errorf("vc1 lost while its connected cluster is unreachable: %v", prefixes(got))
	}
	if n := clusterWatchErrors(t, r, cluster); n == 0 {
		t.Errorf("keygate_xds_kube_cluster_watch_errors_total{cluster=%q} = 0 after the cluster stopped", cluster)
	}

	// The Cluster deleted: its virtual clusters go with it.
	e.deleteCluster("conn")
	r.waitFor("no vc1 after the Cluster is deleted", func(ts map[string]model.Target) bool { return !has(vc1)(ts) })
	if v := r.errorGauge(cluster, edgepath.KindVirtualCluster); v != 0 {
		t.Errorf("virtualcluster error gauge of deleted %s = %v, want 0 (no series)", cluster, v)
	}
}

// clusterWatchErrors is keygate_xds_kube_cluster_watch_errors_total of a cluster, summed.
func clusterWatchErrors(t *testing.T, r *running, cluster string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "keygate_xds_kube_cluster_watch_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() == cluster {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// TestVirtualClustersAtStartAndRestart: an xds started when the connected cluster already has
// vclusters serves them once discovery syncs (not in the first model: start-up does not wait
// for connected clusters), and a rotated Cluster credential restarts discovery without losing
// them.
func TestVirtualClustersAtStartAndRestart(t *testing.T) {
	e := newEnv(t)
	peer := e.connected()
	e.vcluster(peer, "team-a", "vc1", kubeAPI.URL, nil)
	e.connectedCluster("conn", peer.URL)
	cluster := e.prefix + "conn"
	vc1 := vclusterPrefix(cluster, "team-a", "vc1")

	start := time.Now()
	r := e.start(kube.Options{})
	if !has(clusterPrefix(cluster))(r.mine(r.first)) {
		t.Fatalf("first model without the Cluster: %v", prefixes(r.mine(r.first)))
	}
	r.waitFor(vc1, has(vc1))
	t.Logf("xds started → model with the existing virtual cluster: %s", time.Since(start))

	// A new credential for the connected cluster: discovery restarts with it, and vc1 stays
	// served throughout (every model has it).
	e.tlsSecret("conn", edgeUser)
	r.waitLog("connected cluster's credential changed; restarting virtual-cluster discovery", "cluster="+cluster)
	r.waitLog("virtual-cluster discovery synced", "cluster="+cluster)
	e.putCluster(e.cluster("other", "conn"))
	got := r.waitFor("a later model", has(clusterPrefix(e.prefix+"other")))
	if !has(vc1)(got) {
		t.Errorf("vc1 lost after the credential changed: %v", prefixes(got))
	}
	for len(r.models) > 0 {
		if m := r.mine(<-r.models); !has(vc1)(m) {
			t.Errorf("a model without vc1 after the restart: %v", prefixes(m))
		}
	}

	// Without discovery, no virtual clusters.
	e2 := newEnv(t)
	r2 := e2.start(kube.Options{NoVirtualClusters: true})
	e2.tlsSecret("conn", edgeUser)
	c := e2.cluster("conn", "conn")
	c.Spec.Server = peer.URL
	e2.putCluster(c)
	got = r2.waitFor("the cluster", has(clusterPrefix(e2.prefix+"conn")))
	time.Sleep(300 * time.Millisecond) // what discovery would need to sync, were it on
	for len(r2.models) > 0 {
		got = r2.mine(<-r2.models)
	}
	if has(vclusterPrefix(e2.prefix+"conn", "team-a", "vc1"))(got) {
		t.Error("NoVirtualClusters: a virtual cluster was discovered")
	}
}

// TestFirstVirtualClusterAfterAPoll: a connected cluster without vcluster Services is polled,
// not watched; the poll after its first vcluster appears serves it and switches the cluster
// to watching, so that its next vcluster is served from the watch; when the last one goes the
// cluster is polled again, and a vcluster created then is found by a poll again.
func TestFirstVirtualClusterAfterAPoll(t *testing.T) {
	e := newEnv(t)
	peer := e.connected()
	e.connectedCluster("conn", peer.URL)
	cluster := e.prefix + "conn"
	r := e.start(kube.Options{PollInterval: 300 * time.Millisecond})
	r.waitFor("the cluster", has(clusterPrefix(cluster)))
	r.waitFor("a poll of the cluster", func(map[string]model.Target) bool {
		return r.counter("keygate_xds_kube_discovery_polls_total", "result", "none") > 0
	})
	if n := r.gauge("keygate_xds_kube_discovery_clusters", "mode", "watched"); n != 0 {
		t.Errorf("%v clusters watched without a vcluster Service, want 0", n)
	}

	e.vcluster(peer, "team-a", "vc1", kubeAPI.URL, nil)
	vc1 := vclusterPrefix(cluster, "team-a", "vc1")
	r.waitFor(vc1, has(vc1))
	r.waitLog("vcluster Service found; watching the connected cluster for virtual clusters", "cluster="+cluster)
	r.waitLog("virtual-cluster discovery synced", "cluster="+cluster)
	if n := r.gauge("keygate_xds_kube_discovery_clusters", "mode", "watched"); n != 1 {
		t.Errorf("%v clusters watched with a vcluster Service, want 1", n)
	}
	if n := r.counter("keygate_xds_kube_discovery_mode_changes_total", "mode", "watched"); n != 1 {
		t.Errorf("%v switches to watched, want 1", n)
	}

	// A second one, served by the watch.
	e.vcluster(peer, "team-b", "vc2", kubeAPI.URL, nil)
	vc2 := vclusterPrefix(cluster, "team-b", "vc2")
	r.waitFor(vc2, func(ts map[string]model.Target) bool { return has(vc1)(ts) && has(vc2)(ts) })

	// Both gone: polled again.
	for _, ns := range []string{"team-a", "team-b"} {
		name := map[string]string{"team-a": "vc1", "team-b": "vc2"}[ns]
		if err := peer.Client.CoreV1().Services(ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFor("no virtual clusters", func(ts map[string]model.Target) bool { return !has(vc1)(ts) && !has(vc2)(ts) })
	r.waitLog("no vcluster Service left; polling the connected cluster for virtual clusters", "cluster="+cluster)
	if n := r.counter("keygate_xds_kube_discovery_mode_changes_total", "mode", "polled"); n != 1 {
		t.Errorf("%v switches to polled, want 1", n)
	}

	// A vcluster created while polled is found by the next poll.
	e.vcluster(peer, "team-c", "vc3", kubeAPI.URL, nil)
	vc3 := vclusterPrefix(cluster, "team-c", "vc3")
	r.waitFor(vc3, has(vc3))
	if n := r.counter("keygate_xds_kube_discovery_mode_changes_total", "mode", "watched"); n != 2 {
		t.Errorf("%v switches to watched, want 2", n)
	}
}

// gauge is the value of the gauge name's series with label=value.
func (r *running) gauge(name, label, value string) float64 {
	m := r.series(name, label, value)
	return m.GetGauge().GetValue()
}

// counter is the value of the counter name's series with label=value.
func (r *running) counter(name, label, value string) float64 {
	m := r.series(name, label, value)
	return m.GetCounter().GetValue()
}

func (r *running) series(name, label, value string) *dto.Metric {
	r.env.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.env.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m
				}
			}
		}
	}
	return nil
}
