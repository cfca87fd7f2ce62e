// Package kube is the Kubernetes source of xds: it watches Cluster objects
// (targets.keygate.dev/v1alpha1, CRD in manifests/crds/) and the Secrets they reference with
// client-go informers, and turns them into the model.Model that source/file makes of a targets
// file. Each Cluster becomes a cluster target and, if it names one, a Grafana target. In each
// connected cluster whose cluster target is good, a discoverer (discover.go) finds the virtual
// clusters by vcluster's conventions and makes them virtualcluster targets (vcluster.go).
//
// A target whose object or Secret does not translate is reported (log, metric) and keeps its last
// good version; the other targets are unaffected. Only deleting the Cluster (or its grafana
// field, or a vcluster's Service) removes a target, so that a half-written Secret never cuts a
// cluster off.
package kube

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// DefaultDebounce is how long the source waits after the last change before it builds a model:
// a burst of changes (a Secret and its Cluster applied together) becomes one update.
const DefaultDebounce = 200 * time.Millisecond

// maxWaits bounds the debounce, in debounces: under a steady stream of changes (thousands of
// Clusters being created) a model is still built at least every maxWaits×debounce.
const maxWaits = 10

// secretIndex indexes Cluster objects by the Secrets ("namespace/name") they reference, so
// that a Secret event is acted on only if some Cluster uses the Secret.
const secretIndex = "secret"

// Options configure a Source.
type Options struct {
	// Config reaches the API server that holds the Cluster objects (the platform's own cluster).
	Config *rest.Config
	// SecretNamespace limits the Secrets watched, cached and readable (RBAC) to one namespace;
	// empty watches every namespace.
	SecretNamespace string
	// Log receives the source's messages and the informers'; nil discards them.
	Log *slog.Logger
	// Registerer registers the source's metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	// Debounce is how long to wait after a change before building; 0 means DefaultDebounce.
	Debounce time.Duration
	// NoVirtualClusters turns off the discovery of virtual clusters in the connected clusters
	// (on by default: see discover.go).
	NoVirtualClusters bool
}

// Source watches Cluster objects and their Secrets. Make one with Watch.
type Source struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	clusters cache.SharedIndexInformer
	secrets  cache.SharedIndexInformer
	// declared watches VirtualCluster objects; nil if their CRD is not installed or not
	// readable (declaring virtual clusters is optional).
	declared cache.SharedIndexInformer
	changes  chan struct{}
	// failing is, by resource, whether the last list or watch failed.
	failing map[string]*atomic.Bool

	stop      context.CancelFunc
	informers sync.WaitGroup
	closeOnce sync.Once

	// state is each Cluster's last translation, by name. Only Watch, then Run, use it.
	state map[string]*clusterState
	// vstate is each discovered virtual cluster's last translation, by Cluster name, then by
	// its Service's "namespace/name". Only Watch, then Run, use it.
	vstate map[string]map[string]*vclusterState

	// dstate is each VirtualCluster object's last translation, by object name. Only Watch,
	// then Run, use it.
	dstate map[string]*declaredState
	// errorClusters are the Clusters whose virtualcluster error gauge is set.
	errorClusters map[string]bool

	// mu guards discoverers against a Close during a build.
	mu sync.Mutex
	// discoverers find the virtual clusters of each Cluster whose cluster target is good, by
	// Cluster name. nil once closed.
	discoverers map[string]*discoverer
}

// declaredState is what a VirtualCluster object last translated to.
type declaredState struct {
	vclusterState
	// cluster is the connected cluster it names (the label of its error gauge).
	cluster string
}

// vclusterState is what a discovered virtual cluster last translated to.
type vclusterState struct {
	// uid tells a re-created Service from the one state was built for.
	uid types.UID
	// fingerprint is the resourceVersions of the Service, its Secret and its namespace.
	fingerprint string
	// good is the target served, if any: the latest version that translated.
	good *model.Target
	// err is why the latest version did not translate.
	err error
	// shadowed is whether a declared VirtualCluster with the same prefix is served instead
	// (logged once).
	shadowed bool
}

// clusterState is what a Cluster object last translated to.
type clusterState struct {
	// uid tells a re-created object from the one state was built for.
	uid types.UID
	// fingerprint is the resourceVersions of the object and its Secrets that state was built
	// from: an equal fingerprint means nothing to translate again.
	fingerprint string
	// good is the target of each kind that is served: the latest version that translated.
	good map[edgepath.Kind]model.Target
	// errs is why the latest version of each kind did not translate.
	errs map[edgepath.Kind]error
}

// Watch connects to the API server, checks that the Cluster CRD is installed and that it may
// read Clusters and Secrets, starts the informers and waits for their caches, and returns the
// first model. Call Run to receive later ones (or Close). An API server that cannot be reached
// or a missing CRD is an error: xds does not start serving an empty edge by mistake. The
// VirtualCluster CRD is optional (a warning). Virtual-cluster discovery starts with the first
// build and is not waited for: the first model has no discovered virtual clusters.
func Watch(ctx context.Context, o Options) (*Source, model.Model, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source: %w", err)
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source: %w", err)
	}
	declared, err := preflight(ctx, o, dyn, kube)
	if err != nil {
		return nil, model.Model{}, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source metrics: %w", err)
	}

	s := &Source{
		opts:    o,
		log:     o.Log,
		metrics: m,
		// One pending signal is enough: a build reads the informers' caches, not the events.
		changes:       make(chan struct{}, 1),
		failing:       map[string]*atomic.Bool{resourceClusters: {}, resourceSecrets: {}, resourceVirtualClusters: {}},
		state:         map[string]*clusterState{},
		dstate:        map[string]*declaredState{},
		errorClusters: map[string]bool{},
		vstate:        map[string]map[string]*vclusterState{},
		discoverers:   map[string]*discoverer{},
	}
	clusters := dyn.Resource(v1alpha1.ClusterResource)
	s.clusters = cache.NewSharedIndexInformer(s.listWatch(resourceClusters,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return clusters.List(ctx, o) },
		clusters.Watch,
	), &unstructured.Unstructured{}, 0, cache.Indexers{secretIndex: indexBySecret})
	informers := []cache.SharedIndexInformer{s.clusters}
	if declared {
		vcs := dyn.Resource(v1alpha1.VirtualClusterResource)
		s.declared = cache.NewSharedIndexInformer(s.listWatch(resourceVirtualClusters,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return vcs.List(ctx, o) },
			vcs.Watch,
		), &unstructured.Unstructured{}, 0, cache.Indexers{secretIndex: indexBySecret})
		informers = append(informers, s.declared)
	}
	secrets := kube.CoreV1().Secrets(o.SecretNamespace)
	s.secrets = cache.NewSharedIndexInformer(s.listWatch(resourceSecrets,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return secrets.List(ctx, o) },
		secrets.Watch,
	), &corev1.Secret{}, 0, cache.Indexers{})
	informers = append(informers, s.secrets)
	if err := s.setUp(informers); err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source: %w", err)
	}

	// The informers outlive ctx (which may only bound start-up): Run or Close stops them.
	ictx, stop := context.WithCancel(context.Background())
	ictx = klog.NewContext(ictx, logr.FromSlogHandler(o.Log.With("component", "informer").Handler()))
	s.stop = stop
	synced := make([]cache.InformerSynced, 0, len(informers))
	for _, inf := range informers {
		synced = append(synced, inf.HasSynced)
		s.informers.Add(1)
		go func() {
			defer s.informers.Done()
			inf.RunWithContext(ictx)
		}()
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		s.Close()
		return nil, model.Model{}, fmt.Errorf("kubernetes source: the Cluster and Secret caches did not fill: %w", ctx.Err())
	}
	first := s.build(nil)
	o.Log.Info("kubernetes source synced", "clusters", len(s.state), "virtual_clusters_declared", len(s.dstate),
		"targets", len(first.Targets), "secret_namespace", o.SecretNamespace)
	return s, first, nil
}

// preflight lists a Cluster and a Secret once, so that a missing CRD or missing permissions
// fail start-up with a message that says what to do, rather than informers retrying forever.
// VirtualCluster objects are optional: declared reports whether they can be watched.
func preflight(ctx context.Context, o Options, dyn dynamic.Interface, kube kubernetes.Interface) (declared bool, err error) {
	if err := preflightRequired(ctx, o, dyn, kube); err != nil {
		return false, err
	}
	_, err = dyn.Resource(v1alpha1.VirtualClusterResource).List(ctx, metav1.ListOptions{Limit: 1})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		// An edge set up before VirtualClusters existed keeps working; say how to get them.
		o.Log.Warn("the VirtualCluster CRD is not installed: declared virtual clusters are off (kubectl apply -k manifests/crds/, then restart xds); discovered ones are served",
			"crd", "virtualclusters."+v1alpha1.Group)
		return false, nil
	case apierrors.IsForbidden(err):
		o.Log.Warn("may not list VirtualCluster objects: declared virtual clusters are off (grant it with manifests/rbac/xds.yaml, then restart xds); discovered ones are served",
			"error", err)
		return false, nil
	}
	return false, fmt.Errorf("kubernetes source %s: list virtualclusters.%s: %w", o.Config.Host, v1alpha1.Group, err)
}

func preflightRequired(ctx context.Context, o Options, dyn dynamic.Interface, kube kubernetes.Interface) error {
	where := o.Config.Host
	if _, err := dyn.Resource(v1alpha1.ClusterResource).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("kubernetes source %s: the Cluster CRD (clusters.%s) is not installed: kubectl apply -f manifests/crds/", where, v1alpha1.Group)
		case apierrors.IsForbidden(err):
			return fmt.Errorf("kubernetes source %s: may not list clusters.%s (grant it with manifests/rbac/xds.yaml): %w", where, v1alpha1.Group, err)
		}
		return fmt.Errorf("kubernetes source %s: list clusters.%s: %w", where, v1alpha1.Group, err)
	}
	if _, err := kube.CoreV1().Secrets(o.SecretNamespace).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		ns := o.SecretNamespace
		if ns == "" {
			ns = "all namespaces"
		}
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("kubernetes source %s: may not list Secrets in %s (grant it with manifests/rbac/xds.yaml): %w", where, ns, err)
		}
		return fmt.Errorf("kubernetes source %s: list Secrets in %s: %w", where, ns, err)
	}
	return nil
}

// setUp registers the event handlers and the transforms, which must precede the informers'
// start.
func (s *Source) setUp(informers []cache.SharedIndexInformer) error {
	for _, inf := range informers {
		if err := inf.SetTransform(slim); err != nil {
			return err
		}
	}
	changed := func(any) { s.changed() }
	for _, inf := range []cache.SharedIndexInformer{s.clusters, s.declared} {
		if inf == nil {
			continue
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: changed, UpdateFunc: func(_, obj any) { s.changed() }, DeleteFunc: changed,
		}); err != nil {
			return err
		}
	}
	secretChanged := func(obj any) {
		if s.referenced(obj) {
			s.changed()
		}
	}
	_, err := s.secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: secretChanged, UpdateFunc: func(_, obj any) { secretChanged(obj) }, DeleteFunc: secretChanged,
	})
	return err
}

// listWatch wraps list and watch calls to report the API server's health: while it cannot be
// reached, the informers retry with backoff (quietly: client-go logs refused connections only at
// debug level) and their caches, and so the model, stay as they were.
func (s *Source) listWatch(resource string, list cache.ListWithContextFunc, watchFn cache.WatchFuncWithContext) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			s.health(ctx, resource, err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := watchFn(ctx, o)
			s.health(ctx, resource, err)
			return w, err
		},
	}
}

// health counts a failed list or watch, and logs when the API server is lost and found again
// (not every retry).
func (s *Source) health(ctx context.Context, resource string, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	failing := s.failing[resource]
	if err == nil {
		if failing.Swap(false) {
			s.log.Info("Kubernetes API reachable again", "resource", resource)
		}
		return
	}
	s.metrics.watchErrors.WithLabelValues(resource).Inc()
	if !failing.Swap(true) {
		s.log.Warn("cannot list or watch the Kubernetes API; retrying, and the last good targets stay in force",
			"resource", resource, "error", err)
		return
	}
	s.log.Debug("cannot list or watch the Kubernetes API; retrying", "resource", resource, "error", err)
}

// slim drops what the source never reads from cached objects: managed fields, and kubectl's
// last-applied annotation, which would keep a second copy of every applied Secret's data.
func slim(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(a)
		}
	}
	return obj, nil
}

// secretRefs are the Secrets ("namespace/name") an unstructured Cluster references.
func secretRefs(u *unstructured.Unstructured) []string {
	var refs []string
	for _, path := range [][]string{{"spec", "config"}, {"spec", "grafana", "config"}} {
		ns, _, _ := unstructured.NestedString(u.Object, append(path, "secretNamespace")...)
		name, _, _ := unstructured.NestedString(u.Object, append(path, "secretName")...)
		if name != "" {
			refs = append(refs, ns+"/"+name)
		}
	}
	return refs
}

func indexBySecret(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	return secretRefs(u), nil
}

// referenced reports whether some Cluster or VirtualCluster references the Secret obj (or its
// tombstone).
func (s *Source) referenced(obj any) bool {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return false
	}
	for _, inf := range []cache.SharedIndexInformer{s.clusters, s.declared} {
		if inf == nil {
			continue
		}
		if refs, err := inf.GetIndexer().IndexKeys(secretIndex, key); err == nil && len(refs) > 0 {
			return true
		}
	}
	return false
}

func (s *Source) changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Run waits for changes until ctx ends, then stops the informers. After each change
// (debounced) it builds a model from the caches and passes it to update; invalid hears of every
// target that newly fails to translate (the server counts it). A model that update refuses
// changes nothing: the last good targets stay in force.
func (s *Source) Run(ctx context.Context, update func(context.Context, model.Model) error, invalid func(error)) error {
	defer s.Close()
	// Stopped until the first change; since Go 1.23 a stopped timer's channel holds nothing stale.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var since time.Time // when the oldest change not yet built arrived
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-s.changes:
			now := time.Now()
			if since.IsZero() {
				since = now
			}
			timer.Reset(max(0, min(s.opts.Debounce, since.Add(maxWaits*s.opts.Debounce).Sub(now))))
		case <-timer.C:
			since = time.Time{}
			m := s.build(invalid)
			if err := update(ctx, m); err != nil {
				s.log.Error("targets refused; the last good targets stay in force", "source", "kubernetes", "error", err)
			}
		}
	}
}

// Close stops the informers of a Source that will not Run (Run closes it itself). It returns
// once they have stopped.
func (s *Source) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.informers.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range s.discoverers {
			d.close()
		}
		s.discoverers = nil
	})
}

// build translates every Cluster whose object or Secrets changed since the last build, reports
// the targets that newly fail, and returns the model of every served target.
func (s *Source) build(invalid func(error)) model.Model {
	seen := make(map[string]bool, len(s.state))
	var targets []model.Target
	for _, obj := range s.clusters.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		name := u.GetName()
		seen[name] = true
		fp := s.fingerprint(u)
		st := s.state[name]
		if st != nil && st.uid != u.GetUID() {
			// Deleted and created again between two builds: the old object's last good targets
			// must not stand in for the new one's.
			s.metrics.targetErrors.DeletePartialMatch(prometheus.Labels{"cluster": name})
			st = nil
		}
		if st == nil || st.fingerprint != fp {
			st = s.apply(name, st, fp, s.translate(u), invalid)
			st.uid = u.GetUID()
			s.state[name] = st
		}
		for _, t := range st.good {
			targets = append(targets, t)
		}
	}
	for name := range s.state {
		if !seen[name] {
			delete(s.state, name)
			s.metrics.targetErrors.DeletePartialMatch(prometheus.Labels{"cluster": name})
			s.log.Info("Cluster deleted; its targets are removed", "cluster", name)
		}
	}
	declared, failing := s.buildDeclared(invalid)
	for _, t := range declared {
		targets = append(targets, t)
	}
	targets = append(targets, s.buildVirtualClusters(declared, failing, invalid)...)
	s.setVirtualClusterErrors(failing)
	return model.New(targets...)
}

// fingerprint identifies the versions of a Cluster object and its Secrets.
func (s *Source) fingerprint(u *unstructured.Unstructured) string {
	var b strings.Builder
	b.WriteString(u.GetResourceVersion())
	for _, key := range secretRefs(u) {
		b.WriteString(" " + key + "@")
		if obj, ok, _ := s.secrets.GetIndexer().GetByKey(key); ok {
			b.WriteString(obj.(*corev1.Secret).ResourceVersion)
		}
	}
	return b.String()
}

// translate decodes a Cluster object and translates it with the cached Secrets.
func (s *Source) translate(u *unstructured.Unstructured) []result {
	var c v1alpha1.Cluster
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
		ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: u.GetName()}
		return []result{{ref: ref, err: fmt.Errorf("not a valid Cluster object: %w", err)}}
	}
	return clusterTargets(&c, s.lookupSecret)
}

func (s *Source) lookupSecret(ref v1alpha1.SecretRef) (*corev1.Secret, error) {
	name := ref.SecretNamespace + "/" + ref.SecretName
	if ns := s.opts.SecretNamespace; ns != "" && ref.SecretNamespace != ns {
		return nil, fmt.Errorf("Secret %s: xds reads Secrets in namespace %q only (--kube-secret-namespace)", name, ns)
	}
	obj, ok, err := s.secrets.GetIndexer().GetByKey(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("Secret %s not found", name)
	}
	return obj.(*corev1.Secret), nil
}

// apply records the translation of a Cluster's new version: a target that translated is
// served; one that did not keeps its last good version, if it has one. New errors and
// recoveries are logged once each, not at every build.
func (s *Source) apply(name string, prev *clusterState, fp string, results []result, invalid func(error)) *clusterState {
	if prev == nil {
		prev = &clusterState{}
	}
	next := &clusterState{fingerprint: fp, good: map[edgepath.Kind]model.Target{}, errs: map[edgepath.Kind]error{}}
	for _, r := range results {
		kind := r.ref.Kind
		prevErr := prev.errs[kind]
		if r.err == nil {
			next.good[kind] = r.target
			if prevErr != nil {
				s.log.Info("Cluster target translates again", "cluster", name, "kind", kind)
			}
			continue
		}
		next.errs[kind] = r.err
		last, kept := prev.good[kind]
		if kept {
			next.good[kind] = last
		}
		if prevErr != nil && prevErr.Error() == r.err.Error() {
			continue
		}
		msg := "Cluster target refused; it is not served"
		if kept {
			msg = "Cluster target refused; its last good version stays in force"
		}
		s.log.Error(msg, "cluster", name, "kind", kind, "error", r.err)
		if invalid != nil {
			invalid(fmt.Errorf("cluster %s: %s: %w", name, kind, r.err))
		}
	}
	for kind := range prev.errs {
		if _, still := next.errs[kind]; !still {
			s.metrics.targetErrors.DeleteLabelValues(name, string(kind))
		}
	}
	for kind := range next.errs {
		s.metrics.targetErrors.WithLabelValues(name, string(kind)).Set(1)
	}
	return next
}
