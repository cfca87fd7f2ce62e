// Package kube is the Kubernetes source of xds: it watches Cluster objects
// (targets.keygate.dev/v1alpha1, CRD in manifests/crds/) and the Secrets they reference with
// client-go informers, and turns them into the model.Model that source/file makes of a targets
// file. Each Cluster becomes a cluster target and, if it names one, a Grafana target. In each
// connected cluster whose cluster target is good, a discover.Discoverer finds the virtual
// clusters by vcluster's conventions (discovered.go); VirtualCluster objects declare others
// (declared.go). Both make virtualcluster targets.
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
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/discover"
	"github.com/keygate-dev/keygate/xds/source/kube/informer"
)

// DefaultDebounce is how long the source waits after the last change before it builds a model:
// a burst of changes (a Secret and its Cluster applied together) becomes one update.
const DefaultDebounce = 200 * time.Millisecond

// maxWaits bounds the debounce, in debounces: under a steady stream of changes (thousands of
// Clusters being created) a model is still built at least every maxWaits×debounce.
const maxWaits = 10

// discoveryConnects is how many connected clusters' discoverers may start connecting per
// second (discover.Options.Connecting), and at once. A TLS handshake costs xds about 0.4 ms of
// CPU: 200 a second take a few percent of a core, and 10,000 connected clusters are all
// discovered within a minute of start-up, while the Envoys load the first configuration.
const discoveryConnects = 200

// DefaultPollInterval is how often a connected cluster without virtual clusters is polled for
// vcluster Services (Options.PollInterval).
const DefaultPollInterval = time.Minute

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
	// PollInterval is how often a connected cluster without virtual clusters is listed for
	// vcluster Services: its first virtual cluster is served up to that long after it appears
	// (later ones within a second: the cluster is watched from then on). 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
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
	health   *informer.Health

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
	discoverers map[string]*discover.Discoverer
	// discovering is set once the first model is built: the first build starts no discovery,
	// so that start-up (the first model, then xds ready) does not wait on thousands of
	// connected clusters' clients. Only Watch, then Run, use it.
	discovering bool
	// connecting paces the discoverers' connections: their polls, and the start of watches.
	connecting flowcontrol.RateLimiter
	// poller polls the connected clusters whose discoverers are in polled mode.
	poller *discover.Poller
}

// Watch connects to the API server, checks that the Cluster CRD is installed and that it may
// read Clusters and Secrets, starts the informers and waits for their caches, and returns the
// first model. Call Run to receive later ones (or Close). An API server that cannot be reached
// or a missing CRD is an error: xds does not start serving an empty edge by mistake. The
// VirtualCluster CRD is optional (a warning). Virtual-cluster discovery starts with Run's first
// build and is not waited for: the first model has no discovered virtual clusters.
func Watch(ctx context.Context, o Options) (*Source, model.Model, error) {
	o = o.withDefaults()
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
	s, err := newSource(o)
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source metrics: %w", err)
	}
	informers := s.newInformers(dyn, kube, declared)
	if err := s.setUp(informers); err != nil {
		return nil, model.Model{}, fmt.Errorf("kubernetes source: %w", err)
	}
	if err := s.start(ctx, informers); err != nil {
		return nil, model.Model{}, err
	}
	first := s.build(nil)
	// Discovery starts with Run's first build, right after: virtual clusters were never in the
	// first model (their caches have to fill first).
	s.discovering = true
	s.poller.Start()
	s.changed()
	o.Log.Info("kubernetes source synced", "clusters", len(s.state), "virtual_clusters_declared", len(s.dstate),
		"targets", len(first.Targets), "secret_namespace", o.SecretNamespace)
	return s, first, nil
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	return o
}

func newSource(o Options) (*Source, error) {
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	connecting := flowcontrol.NewTokenBucketRateLimiter(discoveryConnects, discoveryConnects)
	return &Source{
		opts:    o,
		log:     o.Log,
		metrics: m,
		health: informer.NewHealth(o.Log, informer.Messages{
			Lost:     "cannot list or watch the Kubernetes API; retrying, and the last good targets stay in force",
			Retrying: "cannot list or watch the Kubernetes API; retrying",
			Found:    "Kubernetes API reachable again",
		}, func(resource string) { m.watchErrors.WithLabelValues(resource).Inc() },
			resourceClusters, resourceSecrets, resourceVirtualClusters),
		// One pending signal is enough: a build reads the informers' caches, not the events.
		changes:       make(chan struct{}, 1),
		state:         map[string]*clusterState{},
		dstate:        map[string]*declaredState{},
		errorClusters: map[string]bool{},
		vstate:        map[string]map[string]*vclusterState{},
		discoverers:   map[string]*discover.Discoverer{},
		connecting:    connecting,
		poller:        discover.NewPoller(o.PollInterval, connecting, m.discoveryPolls),
	}, nil
}

// newInformers makes the informers of Clusters, VirtualClusters (if declared: their CRD is
// there and readable) and Secrets.
func (s *Source) newInformers(dyn dynamic.Interface, kube kubernetes.Interface, declared bool) []cache.SharedIndexInformer {
	objects := func(resource string, r dynamic.NamespaceableResourceInterface) cache.SharedIndexInformer {
		lw := s.health.ListWatch(resource,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return r.List(ctx, o) },
			r.Watch)
		return cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{secretIndex: indexBySecret})
	}
	s.clusters = objects(resourceClusters, dyn.Resource(v1alpha1.ClusterResource))
	informers := []cache.SharedIndexInformer{s.clusters}
	if declared {
		s.declared = objects(resourceVirtualClusters, dyn.Resource(v1alpha1.VirtualClusterResource))
		informers = append(informers, s.declared)
	}
	secrets := kube.CoreV1().Secrets(s.opts.SecretNamespace)
	s.secrets = cache.NewSharedIndexInformer(s.health.ListWatch(resourceSecrets,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return secrets.List(ctx, o) },
		secrets.Watch,
	), &corev1.Secret{}, 0, cache.Indexers{})
	return append(informers, s.secrets)
}

// start runs the informers and waits for their caches. The informers outlive ctx (which may
// only bound start-up): Run or Close stops them.
func (s *Source) start(ctx context.Context, informers []cache.SharedIndexInformer) error {
	ictx, stop := context.WithCancel(context.Background())
	ictx = klog.NewContext(ictx, logr.FromSlogHandler(s.log.With("component", "informer").Handler()))
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
		return fmt.Errorf("kubernetes source: the Cluster and Secret caches did not fill: %w", ctx.Err())
	}
	return nil
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
		if err := inf.SetTransform(informer.Slim); err != nil {
			return err
		}
	}
	for _, inf := range []cache.SharedIndexInformer{s.clusters, s.declared} {
		if inf == nil {
			continue
		}
		if _, err := inf.AddEventHandler(informer.OnChange(func(any) { s.changed() })); err != nil {
			return err
		}
	}
	_, err := s.secrets.AddEventHandler(informer.OnChange(func(obj any) {
		if s.referenced(obj) {
			s.changed()
		}
	}))
	return err
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
		s.poller.Stop()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range s.discoverers {
			d.Close()
		}
		s.discoverers = nil
	})
}
