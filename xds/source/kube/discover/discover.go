// Package discover finds the virtual clusters that vcluster runs in a connected cluster
// (vcluster.go: its conventions), with informers in that cluster, reached with the edge's own
// credential for it: what Envoy uses for the cluster's target. It says what is there and what
// target each makes; the Kubernetes source (xds/source/kube) decides which targets are served,
// and keeps their last good versions.
package discover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
	"github.com/keygate-dev/keygate/xds/source/kube/informer"
)

// Resources a Discoverer watches in a connected cluster, the values of the resource label of
// keygate_xds_kube_cluster_watch_errors_total.
const (
	resourceServices   = "services"
	resourceNamespaces = "namespaces"
	resourceSecrets    = "secrets"
)

// Options configure a Discoverer.
type Options struct {
	// Log receives its messages and its informers'.
	Log *slog.Logger
	// WatchErrors counts failed lists and watches, by cluster and resource
	// (keygate_xds_kube_cluster_watch_errors_total).
	WatchErrors *prometheus.CounterVec
	// Changed is called when something the cluster's virtual clusters are made of changes.
	Changed func()
	// Connecting, if set, is shared by the Discoverers of every connected cluster: each waits
	// for one of its tokens before it first connects. Thousands of Discoverers started together
	// (xds starting with thousands of Clusters) would otherwise all handshake at once: they
	// would time out and retry (client-go's TLS handshake timeout is 10 s), and take the CPU
	// that xds and the Envoys on the same machine need then. A rate, not a number of
	// connections in flight, so that clusters that cannot be reached hold no one up.
	Connecting flowcontrol.RateLimiter
}

// Discoverer finds the virtual clusters of one connected cluster. Its informers call
// Options.Changed; VirtualClusters reads their caches.
//
// It costs the connected cluster one watch, and xds one connection (some 40 KB of heap, most of
// it the connection's TLS and HTTP/2 state), until the cluster has a vcluster Service: xds may
// be connected to thousands of clusters, most of them without virtual clusters. So the only informer always running is the Service one (label
// selector app=vcluster); the Namespace informer and one Secret informer per vcluster start
// with the first vcluster Service and stop with the last. Each informer has one consumer, the
// Discoverer, and so is a plain informer (cache.NewInformerWithOptions) rather than a shared
// one, which would buffer its events for other consumers (16 KB each, allocated up front).
type Discoverer struct {
	cluster string
	// fingerprint is the upstream it was built from: a new credential means a new Discoverer.
	fingerprint string
	log         *slog.Logger
	changed     func()
	// client reaches the core API group of the connected cluster, the only one discovery
	// reads: one REST client over one HTTP client (one connection), shared by the informers.
	client corev1client.CoreV1Interface
	health *informer.Health

	services *watcher

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// namespaces is the informer of namespaces, for the project label of each vcluster's; it
	// runs while the cluster has vcluster Services, else nil. secrets is the informer of each
	// vcluster's vc-<name> Secret, by the Service's key ("namespace/name"). Only
	// VirtualClusters and Close (one goroutine) start and stop them.
	namespaces *watcher
	secrets    map[string]*secretWatch
}

// watcher is one informer of a Discoverer: its cache, and how to stop it.
type watcher struct {
	store cache.Indexer
	ctl   cache.Controller
	stop  context.CancelFunc
}

func (w *watcher) synced() bool { return w.ctl.HasSynced() }

// secretWatch is the informer of one vcluster's kubeconfig Secret: a field selector on its
// name, so that xds never caches the connected cluster's other Secrets (a vcluster namespace
// also holds its Helm release Secrets, which are large).
type secretWatch struct {
	*watcher
	key string // "namespace/vc-<name>"
}

// Fingerprint identifies an upstream's address and credential: a Discoverer whose Fingerprint
// differs from its cluster target's must be started again.
func Fingerprint(u model.Upstream) string {
	h := sha256.New()
	for _, b := range [][]byte{[]byte(u.URL.String()), u.CA, u.ClientCert, u.ClientKey, []byte(u.Token), []byte(u.ServerName)} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// restConfig reaches a connected cluster as the edge: the same address and credential Envoy
// uses for its cluster target.
func restConfig(u model.Upstream) *rest.Config {
	return &rest.Config{
		Host:        u.URL.String(),
		BearerToken: u.Token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: u.CA, CertData: u.ClientCert, KeyData: u.ClientKey, ServerName: u.ServerName,
		},
		UserAgent: "keygate-xds-discovery",
		// Discovery lists and watches a few resources; a modest rate protects the connected
		// cluster when many vclusters come and go at once.
		QPS: 20, Burst: 40,
	}
}

// Start starts the Service informer of the connected cluster cluster, reached at u. It does
// not wait for it: an unreachable cluster must not delay the others, nor the edge.
func Start(cluster string, u model.Upstream, o Options) (*Discoverer, error) {
	client, err := corev1client.NewForConfig(restConfig(u))
	if err != nil {
		return nil, err
	}
	d := &Discoverer{
		cluster:     cluster,
		fingerprint: Fingerprint(u),
		log:         o.Log.With("cluster", cluster),
		changed:     o.Changed,
		client:      client,
		secrets:     map[string]*secretWatch{},
	}
	d.health = newHealth(d.log, cluster, o.WatchErrors)
	ctx, stop := context.WithCancel(context.Background())
	d.ctx = klog.NewContext(ctx, logr.FromSlogHandler(d.log.With("component", "informer").Handler()))
	d.stop = stop
	d.services = d.watchServices(o.Connecting)
	return d, nil
}

// newHealth follows the connected cluster's lists and watches; a refusal names the RBAC to
// grant. Every series exists from the start, so that increase() alerts work before the first
// failure.
func newHealth(log *slog.Logger, cluster string, watchErrors *prometheus.CounterVec) *informer.Health {
	resources := []string{resourceServices, resourceNamespaces, resourceSecrets}
	for _, r := range resources {
		watchErrors.WithLabelValues(cluster, r)
	}
	return informer.NewHealth(log, informer.Messages{
		Lost: "cannot list or watch the connected cluster to discover virtual clusters; retrying, and its virtual clusters keep their last good targets",
		Hint: func(err error) string {
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				return " (grant the edge's identity manifests/rbac/connected-cluster.yaml in that cluster)"
			}
			return ""
		},
		Retrying: "cannot list or watch the connected cluster; retrying",
		Found:    "connected cluster reachable again for virtual-cluster discovery",
	}, func(resource string) { watchErrors.WithLabelValues(cluster, resource).Inc() }, resources...)
}

// watch runs an informer of lw under ctx (a child of d.ctx) until ctx ends, once gate (if not
// nil) lets it; onChange hears of every event, after the cache has it.
func (d *Discoverer) watch(ctx context.Context, stop context.CancelFunc, lw cache.ListerWatcher, obj runtime.Object,
	transform cache.TransformFunc, indexers cache.Indexers, onChange func(any), gate func(context.Context) bool) *watcher {
	logger := klog.FromContext(ctx)
	store, ctl := cache.NewInformerWithOptions(cache.InformerOptions{
		Logger:        &logger,
		ListerWatcher: lw,
		ObjectType:    obj,
		Handler:       informer.OnChange(onChange),
		Indexers:      indexers,
		Transform:     transform,
	})
	d.spawn(func() {
		if gate == nil || gate(ctx) {
			ctl.RunWithContext(ctx)
		}
	})
	return &watcher{store: store.(cache.Indexer), ctl: ctl, stop: stop}
}

// watchServices watches the Services labelled as vcluster's, of every namespace: the
// Discoverer's first connection, made once connecting (if not nil) gives a token.
func (d *Discoverer) watchServices(connecting flowcontrol.RateLimiter) *watcher {
	services := d.client.Services(metav1.NamespaceAll)
	list, watchFn := selected(services.List, services.Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = vclusterSelector
	})
	var gate func(context.Context) bool
	if connecting != nil {
		gate = func(ctx context.Context) bool { return connecting.Wait(ctx) == nil }
	}
	lw := d.health.ListWatch(resourceServices, list, watchFn)
	ctx, stop := context.WithCancel(d.ctx)
	w := d.watch(ctx, stop, lw, &corev1.Service{}, informer.Slim,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, func(any) { d.changed() }, gate)
	// The events of the initial list may be built before the cache counts as synced: one more
	// signal once it is, so that the first build with the full picture happens.
	d.onSynced(ctx, w, func() {
		d.log.Info("virtual-cluster discovery synced", "services", len(w.store.ListKeys()))
		d.changed()
	})
	return w
}

// watchNamespaces watches namespaces, for the project label of a vcluster's.
func (d *Discoverer) watchNamespaces() *watcher {
	namespaces := d.client.Namespaces()
	lw := d.health.ListWatch(resourceNamespaces, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return namespaces.List(ctx, o)
	}, namespaces.Watch)
	// Only a namespace's labels are read (the project): drop the rest.
	slim := func(obj any) (any, error) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels,
			}}, nil
		}
		return obj, nil
	}
	ctx, stop := context.WithCancel(d.ctx)
	w := d.watch(ctx, stop, lw, &corev1.Namespace{}, slim, nil, func(obj any) {
		// A namespace matters only if a vcluster runs in it; most namespaces have none.
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			if svcs, err := d.services.store.ByIndex(cache.NamespaceIndex, key); err == nil && len(svcs) > 0 {
				d.changed()
			}
		}
	}, nil)
	// The vclusters wait for this cache (pending): say when it is there.
	d.onSynced(ctx, w, d.changed)
	return w
}

// onSynced calls f once w's cache is synced, unless ctx ends first. It waits on the informer's
// channel rather than polling (cache.WaitForCacheSync polls every 100 ms, which thousands of
// connected clusters that cannot be reached would do for ever).
func (d *Discoverer) onSynced(ctx context.Context, w *watcher, f func()) {
	d.spawn(func() {
		select {
		case <-w.ctl.HasSyncedChecker().Done():
			f()
		case <-ctx.Done():
		}
	})
}

// selected narrows the lists and watches of list and watchFn with narrow (a label or field
// selector).
func selected[T runtime.Object](
	list func(context.Context, metav1.ListOptions) (T, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
	narrow func(*metav1.ListOptions),
) (cache.ListWithContextFunc, cache.WatchFuncWithContext) {
	return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			narrow(&o)
			l, err := list(ctx, o)
			return l, err
		}, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			narrow(&o)
			return watchFn(ctx, o)
		}
}

// spawn runs f in a goroutine that Close waits for.
func (d *Discoverer) spawn(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

// Fingerprint is the Fingerprint of the upstream d was started with.
func (d *Discoverer) Fingerprint() string { return d.fingerprint }

// Synced reports whether the Service cache has been filled once. Until then, the cluster's
// virtual clusters stay as they were (none after a restart of xds).
func (d *Discoverer) Synced() bool { return d.services.synced() }

// Close stops every informer of the Discoverer and waits for them.
func (d *Discoverer) Close() {
	for key, sw := range d.secrets {
		sw.stop()
		delete(d.secrets, key)
	}
	if d.namespaces != nil {
		d.namespaces.stop()
		d.namespaces = nil
	}
	d.stop()
	d.wg.Wait()
}

// VirtualCluster is a virtual cluster found in a connected cluster, as the caches last saw it.
type VirtualCluster struct {
	// Key is its Service's "namespace/name".
	Key string
	// UID is its Service's: a re-created Service is another virtual cluster.
	UID types.UID
	// Pending is set while the caches of its Secret and of the namespaces fill: there is
	// nothing to say about it yet.
	Pending bool
	// Fingerprint is the resourceVersions of the Service, its Secret and its namespace: an
	// equal fingerprint means nothing to translate again.
	Fingerprint string

	cluster  string
	svc      *corev1.Service
	secret   *corev1.Secret
	nsLabels map[string]string
}

// Target translates the virtual cluster into its target, or says why it cannot be served.
func (v VirtualCluster) Target() credential.Result {
	return virtualClusterTarget(v.cluster, v.svc, v.secret, v.nsLabels)
}

// VirtualClusters lists the virtual clusters in the synced caches (call it once Synced). It
// also starts the watch of each one's Secret, and of the namespaces while there are any, and
// stops those no longer needed; call it from one goroutine only.
func (d *Discoverer) VirtualClusters() []VirtualCluster {
	svcs := d.vclusterServices()
	d.watchSecrets(svcs)
	switch {
	case len(svcs) > 0 && d.namespaces == nil:
		d.namespaces = d.watchNamespaces()
	case len(svcs) == 0 && d.namespaces != nil:
		d.namespaces.stop()
		d.namespaces = nil
	}
	out := make([]VirtualCluster, 0, len(svcs))
	for _, svc := range svcs {
		v := VirtualCluster{Key: svc.Namespace + "/" + svc.Name, UID: svc.UID, cluster: d.cluster, svc: svc}
		secret, synced := d.secret(v.Key)
		if !synced || !d.namespaces.synced() {
			v.Pending = true
			out = append(out, v)
			continue
		}
		labels, nsVersion := d.namespaceLabels(svc.Namespace)
		secretVersion := "none"
		if secret != nil {
			secretVersion = secret.ResourceVersion
		}
		v.secret, v.nsLabels = secret, labels
		v.Fingerprint = svc.ResourceVersion + " " + secretVersion + " " + nsVersion
		out = append(out, v)
	}
	return out
}

// vclusterServices lists the cached vcluster Services.
func (d *Discoverer) vclusterServices() []*corev1.Service {
	var out []*corev1.Service
	for _, obj := range d.services.store.List() {
		if svc, ok := obj.(*corev1.Service); ok && isVClusterService(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// namespaceLabels are the labels of a cached namespace (nil if unknown), and its version.
func (d *Discoverer) namespaceLabels(name string) (map[string]string, string) {
	obj, ok, _ := d.namespaces.store.GetByKey(name)
	if !ok {
		return nil, ""
	}
	ns := obj.(*corev1.Namespace)
	return ns.Labels, ns.ResourceVersion
}

// watchSecrets starts the Secret informer of each Service that has none, and stops those of
// Services that are gone.
func (d *Discoverer) watchSecrets(svcs []*corev1.Service) {
	want := make(map[string]bool, len(svcs))
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		want[key] = true
		if _, ok := d.secrets[key]; ok {
			continue
		}
		d.secrets[key] = d.startSecretWatch(svc.Namespace, vclusterSecretName(svc.Name))
	}
	for key, sw := range d.secrets {
		if !want[key] {
			sw.stop()
			delete(d.secrets, key)
		}
	}
}

func (d *Discoverer) startSecretWatch(ns, name string) *secretWatch {
	secrets := d.client.Secrets(ns)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	list, watchFn := selected(secrets.List, secrets.Watch, func(o *metav1.ListOptions) {
		o.FieldSelector = selector
	})
	lw := d.health.ListWatch(resourceSecrets, list, watchFn)
	ctx, stop := context.WithCancel(d.ctx)
	w := d.watch(ctx, stop, lw, &corev1.Secret{}, informer.Slim, nil, func(any) { d.changed() }, nil)
	// A Secret that does not exist yields no event: signal once the (empty) cache is synced, so
	// that the vcluster is reported rather than left pending.
	d.onSynced(ctx, w, d.changed)
	return &secretWatch{watcher: w, key: ns + "/" + name}
}

// secret returns the cached kubeconfig Secret of the vcluster Service key, and whether its
// cache is synced (if not, the Secret's absence means nothing yet).
func (d *Discoverer) secret(key string) (secret *corev1.Secret, synced bool) {
	sw, ok := d.secrets[key]
	if !ok || !sw.synced() {
		return nil, false
	}
	obj, ok, _ := sw.store.GetByKey(sw.key)
	if !ok {
		return nil, true
	}
	return obj.(*corev1.Secret), true
}
