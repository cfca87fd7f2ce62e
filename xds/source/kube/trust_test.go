package kube_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// badServers are the servers a tenant would point the edge at: its own host, the cloud's
// metadata service, and plain http (the edge's credential in clear).
var badServers = []struct{ name, server string }{
	{"loopback", "https://127.0.0.1:6443"},
	{"metadata", "https://169.254.169.254"},
	{"plain", "http://vc.example.com"},
}

// TestDiscoveryTrustsOnlyClusterAdmins: a namespace's tenant writes its Services and Secrets,
// not its namespace's labels. A project label the tenant puts on a vcluster Service is
// ignored (the namespace's label is the project; without one, there is none), and a server
// annotation is refused and reported, whatever it names, even on a Service that is exposed:
// the tenant's virtual cluster is not served there, and the others are unaffected.
func TestDiscoveryTrustsOnlyClusterAdmins(t *testing.T) {
	e := newEnv(t)
	peer := e.connected()
	namespaces := peer.Client.CoreV1().Namespaces()
	if _, err := namespaces.Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a",
		Labels: map[string]string{v1alpha1.LabelProject: "payments"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := func(svc *corev1.Service) { svc.Labels[v1alpha1.LabelProject] = "billing" }
	e.vcluster(peer, "team-a", "vc1", kubeAPI.URL, claim)
	e.vcluster(peer, "team-b", "vc2", kubeAPI.URL, claim)
	for _, b := range badServers {
		e.vcluster(peer, "team-c", b.name, kubeAPI.URL, func(svc *corev1.Service) {
			svc.Annotations = map[string]string{v1alpha1.AnnotationServer: b.server}
		})
	}
	e.connectedCluster("conn", peer.URL)
	cluster := e.prefix + "conn"
	r := e.start(kube.Options{})
	vc1, vc2 := vclusterPrefix(cluster, "team-a", "vc1"), vclusterPrefix(cluster, "team-b", "vc2")
	got := r.waitFor("vc1, vc2 and three refusals", func(ts map[string]model.Target) bool {
		return has(vc1)(ts) && has(vc2)(ts) && r.errorGauge(cluster, edgepath.KindVirtualCluster) == float64(len(badServers))
	})
	if p := got[vc1].Ref.Project; p != "payments" {
		t.Errorf("vc1: project %q, want payments (its namespace's label, not its Service's billing)", p)
	}
	if p := got[vc2].Ref.Project; p != "" {
		t.Errorf("vc2: project %q, want none (its namespace has no label; its Service's billing is the tenant's)", p)
	}
	for _, b := range badServers {
		if has(vclusterPrefix(cluster, "team-c", b.name))(got) {
			t.Errorf("%s: served, with the annotation %s", b.name, b.server)
		}
		r.waitLog("virtual cluster refused; it is not served", "virtual_cluster=team-c/"+b.name, "is not read", "tenants can write it")
	}
	if n := len(r.invalid); n < len(badServers) {
		t.Errorf("%d invalid reports, want at least %d", n, len(badServers))
	}

	// The cluster admin labels team-b: vc2 moves into that project.
	ns, err := namespaces.Get(e.ctx, "team-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels = map[string]string{v1alpha1.LabelProject: "ops"}
	if _, err := namespaces.Update(e.ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor("vc2 in project ops", func(ts map[string]model.Target) bool { return has(vc2)(ts) && ts[vc2].Ref.Project == "ops" })
}

// TestDeclaredServersChecked: a VirtualCluster object whose server is the edge's own host or a
// cloud metadata service is refused and reported like any broken declaration; the CRD's
// schema already refuses plain http.
func TestDeclaredServersChecked(t *testing.T) {
	e := newEnv(t)
	r := e.start(kube.Options{NoVirtualClusters: true})
	e.tlsSecret("vc-decl", "vc-admin")
	cluster := e.prefix + "conn"
	servers := []struct{ name, server string }{
		{"loopback", "https://127.0.0.1:6443"}, {"metadata", "https://169.254.169.254"},
		{"gcp", "https://metadata.google.internal"}, {"good", "https://vc.example.com"},
	}
	for _, s := range servers {
		if err := e.putVirtualCluster(s.name, map[string]any{"cluster": cluster, "namespace": "team-a", "name": s.name,
			"config": map[string]any{"secretName": "vc-decl", "secretNamespace": e.ns}, "server": s.server}); err != nil {
			t.Fatal(err)
		}
	}
	good := vclusterPrefix(cluster, "team-a", "good")
	got := r.waitFor("the good declaration and three refusals", func(ts map[string]model.Target) bool {
		return has(good)(ts) && r.errorGauge(cluster, edgepath.KindVirtualCluster) == 3
	})
	for _, s := range servers[:3] {
		if has(vclusterPrefix(cluster, "team-a", s.name))(got) {
			t.Errorf("%s: served at %s", s.name, s.server)
		}
		r.waitLog("virtual cluster refused; it is not served", "virtualcluster_object="+e.prefix+s.name, "spec.server")
	}
	if err := e.putVirtualCluster("plain", map[string]any{"cluster": cluster, "namespace": "team-a", "name": "plain",
		"config": map[string]any{"secretName": "vc-decl", "secretNamespace": e.ns}, "server": "http://vc.example.com"}); err == nil {
		t.Error("a VirtualCluster with an http server was accepted")
	}
}
