package kube_test

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// putVirtualCluster creates or replaces a VirtualCluster object prefix+name, deleted when the
// test ends.
func (e *env) putVirtualCluster(name string, spec map[string]any) error {
	e.t.Helper()
	res := kubeAPI.Dynamic.Resource(v1alpha1.VirtualClusterResource)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.Group + "/" + v1alpha1.Version, "kind": "VirtualCluster",
		"metadata": map[string]any{"name": e.prefix + name}, "spec": spec,
	}}
	old, err := res.Get(e.ctx, e.prefix+name, metav1.GetOptions{})
	if err == nil {
		u.SetResourceVersion(old.GetResourceVersion())
		_, err = res.Update(e.ctx, u, metav1.UpdateOptions{FieldValidation: "Strict"})
		return err
	}
	if _, err = res.Create(e.ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err == nil {
		e.t.Cleanup(func() { _ = res.Delete(e.ctx, e.prefix+name, metav1.DeleteOptions{}) })
	}
	return err
}

// TestDeclaredVirtualClusters: a VirtualCluster object with its Secret in the platform cluster
// is served; declared wins over discovered for the same path, and the discovered one is served
// again once the declaration goes; a broken declaration is reported and counted under its
// cluster; the CRD refuses an incomplete object.
func TestDeclaredVirtualClusters(t *testing.T) {
	e := newEnv(t)
	peer := e.connected()
	e.vcluster(peer, "team-a", "vc1", kubeAPI.URL, nil)
	e.connectedCluster("conn", peer.URL)
	cluster := e.prefix + "conn"
	r := e.start(kube.Options{})
	vc1 := vclusterPrefix(cluster, "team-a", "vc1")
	r.waitFor("discovered vc1", has(vc1))

	// Declared, in a namespace discovery knows nothing of.
	cert := e.tlsSecret("vc-decl", "vc-admin")
	spec := func(ns, name, server string) map[string]any {
		return map[string]any{"cluster": cluster, "namespace": ns, "name": name, "project": "ops",
			"config": map[string]any{"secretName": "vc-decl", "secretNamespace": e.ns}, "server": server}
	}
	if err := e.putVirtualCluster("other", spec("team-z", "other", "https://other.example.com")); err != nil {
		t.Fatal(err)
	}
	other := vclusterPrefix(cluster, "team-z", "other")
	start := time.Now()
	got := r.waitFor(other, has(other))
	t.Logf("VirtualCluster created → model with it: %s", time.Since(start))
	if tg := got[other]; tg.Ref.Project != "ops" || tg.Upstream.URL.String() != "https://other.example.com" || string(tg.Upstream.ClientCert) != string(cert) {
		t.Errorf("declared target %+v, want project ops, https://other.example.com and the Secret's certificate", tg.Ref)
	}

	// Declared over discovered: the declaration is served, then the discovery again.
	if err := e.putVirtualCluster("vc1", spec("team-a", "vc1", "https://vc1.example.com")); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the declared vc1", func(ts map[string]model.Target) bool {
		return has(vc1)(ts) && ts[vc1].Upstream.URL.String() == "https://vc1.example.com"
	})
	r.waitLog("virtual cluster discovered and declared; the declared VirtualCluster is served", "virtual_cluster=team-a/vc1")
	if err := kubeAPI.Dynamic.Resource(v1alpha1.VirtualClusterResource).Delete(e.ctx, e.prefix+"vc1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the discovered vc1 again", func(ts map[string]model.Target) bool {
		return has(vc1)(ts) && ts[vc1].Upstream.URL.String() == kubeAPI.URL
	})

	// A declaration whose Secret is missing: reported, counted under its cluster; the others stay.
	broken := spec("team-y", "broken", "https://broken.example.com")
	broken["config"] = map[string]any{"secretName": "missing", "secretNamespace": e.ns}
	if err := e.putVirtualCluster("broken", broken); err != nil {
		t.Fatal(err)
	}
	r.waitLog("virtual cluster refused; it is not served", "virtualcluster_object="+e.prefix+"broken", "Secret "+e.ns+"/missing not found")
	got = r.waitFor("a model after the broken declaration", func(ts map[string]model.Target) bool {
		return r.errorGauge(cluster, edgepath.KindVirtualCluster) == 1
	})
	if !has(other)(got) || !has(vc1)(got) {
		t.Errorf("a broken VirtualCluster took others down: %v", prefixes(got))
	}

	// The CRD's schema: cluster, namespace, name and config are required; https only.
	err := e.putVirtualCluster("incomplete", map[string]any{"namespace": "ns", "name": "x", "config": map[string]any{"secretName": "s", "secretNamespace": e.ns}})
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.cluster: Required value") {
		t.Errorf("VirtualCluster without spec.cluster: %v, want a 422 naming spec.cluster", err)
	}
	err = e.putVirtualCluster("http", spec("ns", "x", "http://x.example.com"))
	if err == nil || !strings.Contains(err.Error(), "spec.server: Invalid value") {
		t.Errorf("VirtualCluster with an http server: %v, want a 422 naming spec.server", err)
	}
}
