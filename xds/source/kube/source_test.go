package kube_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// kubeAPI is the one real kube-apiserver (and etcd) of this package's tests.
var kubeAPI *kubetest.Server

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &kubeAPI)) }

var installCRDs = sync.OnceValue(func() error {
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return kubeAPI.Apply(ctx, filepath.Join(root, "manifests", "crds", "targets.keygate.dev_clusters.yaml"),
		filepath.Join(root, "manifests", "crds", "targets.keygate.dev_virtualclusters.yaml"))
})

// env is one test's corner of the shared API server: a namespace for its Secrets, and Clusters
// whose names start with its prefix (Clusters are cluster-scoped, so tests tell theirs apart by
// name and delete them when done).
type env struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	prefix string
	ca     *pki.CA
}

var envCount int

func newEnv(t *testing.T) *env {
	t.Helper()
	if err := installCRDs(); err != nil {
		t.Fatal(err)
	}
	envCount++
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, ns: fmt.Sprintf("kt%d", envCount), prefix: fmt.Sprintf("t%d-", envCount), ca: kubeAPI.CA}
	if _, err := kubeAPI.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, c := range list.Items {
				if strings.HasPrefix(c.GetName(), e.prefix) {
					_ = kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).Delete(ctx, c.GetName(), metav1.DeleteOptions{})
				}
			}
		}
		_ = kubeAPI.Client.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{})
	})
	return e
}

// tlsSecret writes Secret name with the API server's CA and a fresh client certificate for
// user, and returns the certificate.
func (e *env) tlsSecret(name, user string) []byte {
	e.t.Helper()
	pair, err := e.ca.Client(user)
	if err != nil {
		e.t.Fatal(err)
	}
	e.putSecret(name, map[string][]byte{"ca.crt": e.ca.CertPEM, "tls.crt": pair.CertPEM, "tls.key": pair.KeyPEM})
	return pair.CertPEM
}

// putSecret creates or replaces Secret name.
func (e *env) putSecret(name string, data map[string][]byte) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Data: data}
	secrets := kubeAPI.Client.CoreV1().Secrets(e.ns)
	if _, err := secrets.Update(e.ctx, s, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = secrets.Create(e.ctx, s, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deleteSecret(name string) {
	e.t.Helper()
	if err := kubeAPI.Client.CoreV1().Secrets(e.ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// cluster returns a Cluster named prefix+name served at the test API server, whose credential
// is Secret secret of the test's namespace.
func (e *env) cluster(name, secret string) *v1alpha1.Cluster {
	return &v1alpha1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.Group + "/" + v1alpha1.Version, Kind: "Cluster"},
		ObjectMeta: metav1.ObjectMeta{Name: e.prefix + name},
		Spec: v1alpha1.ClusterSpec{
			Config: v1alpha1.ClusterConfig{SecretRef: v1alpha1.SecretRef{SecretName: secret, SecretNamespace: e.ns}},
			Server: kubeAPI.URL,
		},
	}
}

func toUnstructured(t *testing.T, c *v1alpha1.Cluster) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// putCluster creates or replaces a Cluster.
func (e *env) putCluster(c *v1alpha1.Cluster) {
	e.t.Helper()
	res := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource)
	u := toUnstructured(e.t, c)
	old, err := res.Get(e.ctx, c.Name, metav1.GetOptions{})
	if err == nil {
		u.SetResourceVersion(old.GetResourceVersion())
		_, err = res.Update(e.ctx, u, metav1.UpdateOptions{})
	} else {
		_, err = res.Create(e.ctx, u, metav1.CreateOptions{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deleteCluster(name string) {
	e.t.Helper()
	if err := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).Delete(e.ctx, e.prefix+name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// running is a Source under Run, with what it reported.
type running struct {
	env     *env
	first   model.Model
	models  chan model.Model
	invalid chan error
	log     *logbuf.Buffer
	reg     *prometheus.Registry
}

func (e *env) start(opts kube.Options) *running {
	e.t.Helper()
	r := &running{env: e, models: make(chan model.Model, 1000), invalid: make(chan error, 1000), log: &logbuf.Buffer{}, reg: prometheus.NewRegistry()}
	if opts.Config == nil {
		opts.Config = kubeAPI.Config
	}
	opts.Log = slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Registerer = r.reg
	opts.Debounce = 20 * time.Millisecond
	src, first, err := kube.Watch(e.ctx, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	r.first = first
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx,
			func(_ context.Context, m model.Model) error { r.models <- m; return nil },
			func(err error) { r.invalid <- err })
	}()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
		if e.t.Failed() {
			e.t.Logf("source log:\n%s", r.log.String())
		}
	})
	return r
}

// mine is the test's own targets of m, by prefix (other tests' Clusters may linger).
func (r *running) mine(m model.Model) map[string]model.Target {
	out := map[string]model.Target{}
	for _, t := range m.Targets {
		if strings.HasPrefix(t.Ref.Cluster, r.env.prefix) {
			out[t.Ref.Prefix()] = t
		}
	}
	return out
}

// waitFor waits for a model whose own targets satisfy ok, and returns them.
func (r *running) waitFor(what string, ok func(map[string]model.Target) bool) map[string]model.Target {
	r.env.t.Helper()
	deadline := time.After(15 * time.Second)
	var last map[string]model.Target
	for {
		select {
		case m := <-r.models:
			if last = r.mine(m); ok(last) {
				return last
			}
		case <-deadline:
			r.env.t.Fatalf("no model with %s; last: %v", what, prefixes(last))
		}
	}
}

func prefixes(ts map[string]model.Target) []string {
	var out []string
	for p := range ts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func clusterPrefix(name string) string {
	return edgepath.Ref{Kind: edgepath.KindCluster, Cluster: name}.Prefix()
}

// errorGauge is keygate_xds_kube_target_errors for a cluster's target of kind.
func (r *running) errorGauge(cluster string, kind edgepath.Kind) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		r.env.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keygate_xds_kube_target_errors" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cluster"] == cluster && labels["kind"] == string(kind) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// waitLog waits until the source has logged a line containing all of parts.
func (r *running) waitLog(parts ...string) {
	r.env.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(r.log.String(), "\n") {
			if containsAll(line, parts) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.env.t.Fatalf("no log line with %q", parts)
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestClusterLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.start(kube.Options{})
	name := e.prefix + "demo"
	prefix := clusterPrefix(name)
	if _, ok := r.mine(r.first)[prefix]; ok {
		t.Fatalf("first model already has %s", prefix)
	}

	cert := e.tlsSecret("demo", "edge-1")
	e.putCluster(e.cluster("demo", "demo"))
	start := time.Now()
	got := r.waitFor(prefix, func(ts map[string]model.Target) bool { _, ok := ts[prefix]; return ok })
	t.Logf("Cluster created (after its Secret) → model with the target: %s", time.Since(start))
	u := got[prefix].Upstream
	if u.URL.String() != kubeAPI.URL || !bytes.Equal(u.CA, kubeAPI.CA.CertPEM) || !bytes.Equal(u.ClientCert, cert) {
		t.Errorf("upstream %s, want %s with the Secret's CA and certificate", u.URL, kubeAPI.URL)
	}

	rotated := e.tlsSecret("demo", "edge-2")
	start = time.Now()
	r.waitFor("the rotated certificate", func(ts map[string]model.Target) bool {
		t, ok := ts[prefix]
		return ok && bytes.Equal(t.Upstream.ClientCert, rotated)
	})
	t.Logf("Secret updated → model with the new certificate: %s", time.Since(start))

	e.deleteCluster("demo")
	start = time.Now()
	r.waitFor("no "+prefix, func(ts map[string]model.Target) bool { _, ok := ts[prefix]; return !ok })
	t.Logf("Cluster deleted → model without the target: %s", time.Since(start))
	if len(r.invalid) > 0 {
		t.Errorf("invalid reported: %v", <-r.invalid)
	}
}

func TestFirstModelHasExistingClusters(t *testing.T) {
	e := newEnv(t)
	e.tlsSecret("a", "edge")
	c := e.cluster("a", "a")
	c.Spec.Spaces = []v1alpha1.Space{{Name: "team-a", Project: "p1"}}
	c.Spec.Grafana = &v1alpha1.Grafana{URL: "http://127.0.0.1:3000"}
	e.putCluster(c)
	// Watch returns once its caches are full: the Cluster is in the first model, with no wait.
	r := e.start(kube.Options{})
	got := r.mine(r.first)
	want := []string{edgepath.Ref{Kind: edgepath.KindCluster, Cluster: e.prefix + "a"}.Prefix(), edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: e.prefix + "a"}.Prefix()}
	slices.Sort(want)
	if diff := slices.Compare(prefixes(got), want); diff != 0 {
		t.Fatalf("first model: %v, want %v", prefixes(got), want)
	}
	if s := got[clusterPrefix(e.prefix+"a")].Ref.Spaces; s != "team-a=p1" {
		t.Errorf("spaces %q, want team-a=p1", s)
	}
}

func TestBrokenSecrets(t *testing.T) {
	e := newEnv(t)
	r := e.start(kube.Options{})
	good, broken := e.prefix+"good", e.prefix+"broken"

	goodCert := e.tlsSecret("good", "edge")
	e.putCluster(e.cluster("good", "good"))
	e.putCluster(e.cluster("broken", "broken")) // its Secret does not exist yet
	r.waitFor("the good cluster", func(ts map[string]model.Target) bool { _, ok := ts[clusterPrefix(good)]; return ok })
	r.waitLog("Cluster target refused; it is not served", "cluster="+broken, "Secret "+e.ns+"/broken not found")
	if v := r.errorGauge(broken, edgepath.KindCluster); v != 1 {
		t.Errorf("target error gauge of %s = %v, want 1", broken, v)
	}
	if v := r.errorGauge(good, edgepath.KindCluster); v != 0 {
		t.Errorf("target error gauge of %s = %v, want 0", good, v)
	}

	// A Secret without any credential: still refused, with the new reason.
	e.putSecret("broken", map[string][]byte{"ca.crt": kubeAPI.CA.CertPEM})
	r.waitLog("cluster="+broken, "holds no credential")

	// Fixed: served, and the gauge goes away.
	e.tlsSecret("broken", "edge")
	r.waitFor("both clusters", func(ts map[string]model.Target) bool {
		_, ok1 := ts[clusterPrefix(good)]
		_, ok2 := ts[clusterPrefix(broken)]
		return ok1 && ok2
	})
	r.waitLog("Cluster target translates again", "cluster="+broken)
	if v := r.errorGauge(broken, edgepath.KindCluster); v != 0 {
		t.Errorf("target error gauge of %s = %v after the fix, want 0", broken, v)
	}

	// A good cluster whose Secret breaks keeps its last good credential: a half-written
	// Secret must not cut the cluster off.
	e.putSecret("good", map[string][]byte{"ca.crt": []byte("not PEM"), "tls.crt": goodCert})
	r.waitLog("Cluster target refused; its last good version stays in force", "cluster="+good)
	if v := r.errorGauge(good, edgepath.KindCluster); v != 1 {
		t.Errorf("target error gauge of %s = %v, want 1", good, v)
	}
	e.putCluster(e.cluster("other", "broken")) // any change: a new model is built
	got := r.waitFor("the third cluster", func(ts map[string]model.Target) bool { _, ok := ts[clusterPrefix(e.prefix+"other")]; return ok })
	if u := got[clusterPrefix(good)].Upstream; !bytes.Equal(u.ClientCert, goodCert) || !bytes.Equal(u.CA, kubeAPI.CA.CertPEM) {
		t.Errorf("%s: the last good credential was not kept", good)
	}

	// Deleting the Secret also keeps the last good version; deleting the Cluster removes it
	// and its gauge.
	e.deleteSecret("good")
	r.waitLog("cluster="+good, "Secret "+e.ns+"/good not found")
	e.deleteCluster("good")
	r.waitFor("no good cluster", func(ts map[string]model.Target) bool { _, ok := ts[clusterPrefix(good)]; return !ok })
	if v := r.errorGauge(good, edgepath.KindCluster); v != 0 {
		t.Errorf("target error gauge of deleted %s = %v, want 0 (no series)", good, v)
	}
	if n := len(r.invalid); n < 3 {
		t.Errorf("invalid called %d times, want one per new error (at least 3)", n)
	}
}

func TestGrafanaFailsAlone(t *testing.T) {
	e := newEnv(t)
	r := e.start(kube.Options{})
	name := e.prefix + "g"
	e.tlsSecret("g", "edge")
	c := e.cluster("g", "g")
	c.Spec.Grafana = &v1alpha1.Grafana{URL: "https://grafana.example.com"} // https without a CA
	e.putCluster(c)
	got := r.waitFor("the cluster", func(ts map[string]model.Target) bool { _, ok := ts[clusterPrefix(name)]; return ok })
	if _, ok := got[edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: name}.Prefix()]; ok {
		t.Error("the Grafana without a CA is served")
	}
	r.waitLog("cluster="+name, "kind=grafana", "no CA")
	if v := r.errorGauge(name, edgepath.KindGrafana); v != 1 {
		t.Errorf("grafana error gauge = %v, want 1", v)
	}
	if v := r.errorGauge(name, edgepath.KindCluster); v != 0 {
		t.Errorf("cluster error gauge = %v, want 0", v)
	}
}

func TestSecretNamespace(t *testing.T) {
	e := newEnv(t)
	other := newEnv(t)
	r := e.start(kube.Options{SecretNamespace: e.ns})
	e.tlsSecret("in", "edge")
	other.tlsSecret("out", "edge")
	e.putCluster(e.cluster("in", "in"))
	out := e.cluster("out", "out")
	out.Spec.Config.SecretNamespace = other.ns
	e.putCluster(out)
	r.waitFor("the cluster whose Secret is watched", func(ts map[string]model.Target) bool { _, ok := ts[clusterPrefix(e.prefix+"in")]; return ok })
	r.waitLog("cluster="+e.prefix+"out", "xds reads Secrets in namespace", e.ns, "only")
}

// TestRBAC runs the source as the ServiceAccount that manifests/rbac/xds.yaml grants, and as a
// user without rights, whose start-up error must say what is missing.
func TestRBAC(t *testing.T) {
	e := newEnv(t)
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubeAPI.Client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keygate"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := kubeAPI.Apply(e.ctx, filepath.Join(root, "manifests", "rbac", "xds.yaml")); err != nil {
		t.Fatal(err)
	}
	sa := rest.CopyConfig(kubeAPI.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:keygate:keygate-xds", Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	e.start(kube.Options{Config: sa, SecretNamespace: "keygate"})

	_, _, err = kube.Watch(e.ctx, kube.Options{Config: sa}) // all namespaces: not granted
	if err == nil || !strings.Contains(err.Error(), "may not list Secrets in all namespaces") {
		t.Errorf("Watch of every namespace's Secrets as the ServiceAccount: %v, want a 'may not list Secrets' error", err)
	}
	nobody, _, err := kubeAPI.ClientConfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = kube.Watch(e.ctx, kube.Options{Config: nobody})
	if err == nil || !strings.Contains(err.Error(), "may not list clusters.targets.keygate.dev") {
		t.Errorf("Watch as a user without rights: %v, want a 'may not list clusters' error", err)
	}
}

// TestAPIServerDown stops a (second) API server under a running source: it must keep its last
// model, count the failed watches, and not crash.
func TestAPIServerDown(t *testing.T) {
	if err := installCRDs(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := kubetest.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	root, _ := toolbin.RepoRoot()
	if err := srv.Apply(ctx, filepath.Join(root, "manifests", "crds", "targets.keygate.dev_clusters.yaml")); err != nil {
		t.Fatal(err)
	}
	pair, err := srv.CA.Client("edge")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Data: map[string][]byte{"ca.crt": srv.CA.CertPEM, "tls.crt": pair.CertPEM, "tls.key": pair.KeyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := &v1alpha1.Cluster{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.Group + "/" + v1alpha1.Version, Kind: "Cluster"}, ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: v1alpha1.SecretRef{SecretName: "c", SecretNamespace: "default"}}, Server: srv.URL}}
	if _, err := srv.Dynamic.Resource(v1alpha1.ClusterResource).Create(ctx, toUnstructured(t, c), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	log := &logbuf.Buffer{}
	src, first, err := kube.Watch(ctx, kube.Options{Config: srv.Config, Registerer: reg, Debounce: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Targets) != 1 {
		t.Fatalf("first model has %d targets, want 1", len(first.Targets))
	}
	models := make(chan model.Model, 100)
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(rctx, func(_ context.Context, m model.Model) error { models <- m; return nil }, func(error) {})
	}()

	srv.Stop()
	stopped = true
	stoppedAt := time.Now()
	// The reflectors notice at once (their watches end) and retry with backoff.
	deadline := time.Now().Add(30 * time.Second)
	for watchErrors(t, reg) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no watch error counted after the API server stopped; log:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("API server stopped → first failed watch counted: %s", time.Since(stoppedAt))
	select {
	case m := <-models:
		if len(m.Targets) != 1 {
			t.Errorf("a model with %d targets while the API server is down, want the last one (1)", len(m.Targets))
		}
	case <-time.After(500 * time.Millisecond):
	}
	rcancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(log.String(), "cannot list or watch the Kubernetes API; retrying, and the last good targets stay in force") {
		t.Errorf("no warning logged; log:\n%s", log.String())
	}
}

// watchErrors is the sum of keygate_xds_kube_watch_errors_total.
func watchErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == "keygate_xds_kube_watch_errors_total" {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func TestMetricNamesLint(t *testing.T) {
	e := newEnv(t)
	r := e.start(kube.Options{})
	e.putCluster(e.cluster("x", "missing"))
	r.waitLog("cluster="+e.prefix+"x", "not found")
	mfs := metricstest.Lint(t, r.reg)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{"keygate_xds_kube_discovery_clusters", "keygate_xds_kube_discovery_mode_changes_total", "keygate_xds_kube_discovery_polls_total",
		"keygate_xds_kube_target_errors", "keygate_xds_kube_watch_errors_total"}
	if !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}
}
