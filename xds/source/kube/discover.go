package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/xds/model"
)

// Resources a discoverer watches in a connected cluster, the values of the resource label of
// keygate_xds_kube_cluster_watch_errors_total.
const (
	resourceServices   = "services"
	resourceNamespaces = "namespaces"
)

// discoverer finds the virtual clusters of one connected cluster with its own informers in
// that cluster, reached with the edge's credential for it (the Cluster target's upstream).
// Its informers signal changed; the Source's build reads their caches.
type discoverer struct {
	cluster string
	// fingerprint is the upstream it was built from: a new credential means a new discoverer.
	fingerprint string
	log         *slog.Logger
	metrics     *metrics
	changed     func()
	client      kubernetes.Interface

	services, namespaces cache.SharedIndexInformer
	// failing is, by resource, whether the last list or watch failed.
	failing map[string]*atomic.Bool

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// secrets is the informer of each vcluster's vc-<name> Secret, by the Service's key
	// ("namespace/name"). Only the Source's build (one goroutine) starts and stops them.
	secrets map[string]*secretWatch
}

// secretWatch is the informer of one vcluster's kubeconfig Secret: a field selector on its
// name, so that xds never caches the connected cluster's other Secrets (a vcluster namespace
// also holds its Helm release Secrets, which are large).
type secretWatch struct {
	informer cache.SharedIndexInformer
	stop     context.CancelFunc
	key      string // "namespace/vc-<name>"
}

// upstreamFingerprint identifies an upstream's address and credential.
func upstreamFingerprint(u model.Upstream) string {
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

// startDiscoverer starts the Service and Namespace informers of a connected cluster. It does
// not wait for them: an unreachable cluster must not delay the others, nor the edge.
func startDiscoverer(cluster string, u model.Upstream, log *slog.Logger, m *metrics, changed func()) (*discoverer, error) {
	client, err := kubernetes.NewForConfig(restConfig(u))
	if err != nil {
		return nil, err
	}
	d := &discoverer{
		cluster:     cluster,
		fingerprint: upstreamFingerprint(u),
		log:         log.With("cluster", cluster),
		metrics:     m,
		changed:     changed,
		client:      client,
		failing:     map[string]*atomic.Bool{resourceServices: {}, resourceNamespaces: {}, resourceSecrets: {}},
		secrets:     map[string]*secretWatch{},
	}
	for _, r := range []string{resourceServices, resourceNamespaces, resourceSecrets} {
		m.clusterWatchErrors.WithLabelValues(cluster, r)
	}
	services := client.CoreV1().Services(metav1.NamespaceAll)
	d.services = cache.NewSharedIndexInformer(d.listWatch(resourceServices,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = vclusterSelector
			return services.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = vclusterSelector
			return services.Watch(ctx, o)
		},
	), &corev1.Service{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	namespaces := client.CoreV1().Namespaces()
	d.namespaces = cache.NewSharedIndexInformer(d.listWatch(resourceNamespaces,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return namespaces.List(ctx, o)
		},
		namespaces.Watch,
	), &corev1.Namespace{}, 0, cache.Indexers{})
	if err := d.services.SetTransform(slim); err != nil {
		return nil, err
	}
	// Only a namespace's labels are read (the project): drop the rest.
	if err := d.namespaces.SetTransform(func(obj any) (any, error) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels,
			}}, nil
		}
		return obj, nil
	}); err != nil {
		return nil, err
	}
	ch := func(any) { changed() }
	if _, err := d.services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: ch, UpdateFunc: func(_, obj any) { changed() }, DeleteFunc: ch,
	}); err != nil {
		return nil, err
	}
	// A namespace matters only if a vcluster runs in it; most namespaces have none.
	nsChanged := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			if svcs, err := d.services.GetIndexer().ByIndex(cache.NamespaceIndex, key); err == nil && len(svcs) > 0 {
				changed()
			}
		}
	}
	if _, err := d.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nsChanged, UpdateFunc: func(_, obj any) { nsChanged(obj) }, DeleteFunc: nsChanged,
	}); err != nil {
		return nil, err
	}

	ctx, stop := context.WithCancel(context.Background())
	d.ctx = klog.NewContext(ctx, logr.FromSlogHandler(d.log.With("component", "informer").Handler()))
	d.stop = stop
	for _, inf := range []cache.SharedIndexInformer{d.services, d.namespaces} {
		d.run(inf)
	}
	// The events of the initial list may be built before the caches count as synced: one more
	// signal once they are, so that the first build with the full picture happens.
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if cache.WaitForCacheSync(d.ctx.Done(), d.services.HasSynced, d.namespaces.HasSynced) {
			d.log.Info("virtual-cluster discovery synced", "services", len(d.services.GetStore().ListKeys()))
			changed()
		}
	}()
	return d, nil
}

func (d *discoverer) run(inf cache.SharedIndexInformer) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		inf.RunWithContext(d.ctx)
	}()
}

// synced reports whether the Service and Namespace caches have been filled once. Until then,
// the cluster's virtual clusters stay as they were (none after a restart of xds).
func (d *discoverer) synced() bool { return d.services.HasSynced() && d.namespaces.HasSynced() }

// close stops every informer of the discoverer and waits for them.
func (d *discoverer) close() {
	for key, sw := range d.secrets {
		sw.stop()
		delete(d.secrets, key)
	}
	d.stop()
	d.wg.Wait()
}

// vclusterServices lists the cached vcluster Services.
func (d *discoverer) vclusterServices() []*corev1.Service {
	var out []*corev1.Service
	for _, obj := range d.services.GetStore().List() {
		if svc, ok := obj.(*corev1.Service); ok && isVClusterService(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// namespaceLabels are the labels of a cached namespace (nil if unknown).
func (d *discoverer) namespaceLabels(name string) (map[string]string, string) {
	obj, ok, _ := d.namespaces.GetStore().GetByKey(name)
	if !ok {
		return nil, ""
	}
	ns := obj.(*corev1.Namespace)
	return ns.Labels, ns.ResourceVersion
}

// watchSecrets starts the Secret informer of each Service that has none, and stops those of
// Services that are gone.
func (d *discoverer) watchSecrets(svcs []*corev1.Service) {
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

func (d *discoverer) startSecretWatch(ns, name string) *secretWatch {
	secrets := d.client.CoreV1().Secrets(ns)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	inf := cache.NewSharedIndexInformer(d.listWatch(resourceSecrets,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return secrets.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return secrets.Watch(ctx, o)
		},
	), &corev1.Secret{}, 0, cache.Indexers{})
	_ = inf.SetTransform(slim) // cannot fail before the informer runs
	ch := func(any) { d.changed() }
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: ch, UpdateFunc: func(_, obj any) { d.changed() }, DeleteFunc: ch,
	})
	ctx, stop := context.WithCancel(d.ctx)
	sw := &secretWatch{informer: inf, stop: stop, key: ns + "/" + name}
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		inf.RunWithContext(ctx)
	}()
	// A Secret that does not exist yields no event: signal once the (empty) cache is synced, so
	// that the vcluster is reported rather than left pending.
	go func() {
		defer d.wg.Done()
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			d.changed()
		}
	}()
	return sw
}

// secret returns the cached kubeconfig Secret of the vcluster Service key, and whether its
// cache is synced (if not, the Secret's absence means nothing yet).
func (d *discoverer) secret(key string) (secret *corev1.Secret, synced bool) {
	sw, ok := d.secrets[key]
	if !ok || !sw.informer.HasSynced() {
		return nil, false
	}
	obj, ok, _ := sw.informer.GetStore().GetByKey(sw.key)
	if !ok {
		return nil, true
	}
	return obj.(*corev1.Secret), true
}

// listWatch wraps list and watch calls to report the connected cluster's health, as
// Source.listWatch does for the platform's API server.
func (d *discoverer) listWatch(resource string, list cache.ListWithContextFunc, watchFn cache.WatchFuncWithContext) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			d.health(ctx, resource, err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := watchFn(ctx, o)
			d.health(ctx, resource, err)
			return w, err
		},
	}
}

// health counts a failed list or watch in a connected cluster, and logs when it is lost and
// found again (not every retry). A refusal names the RBAC to grant.
func (d *discoverer) health(ctx context.Context, resource string, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	failing := d.failing[resource]
	if err == nil {
		if failing.Swap(false) {
			d.log.Info("connected cluster reachable again for virtual-cluster discovery", "resource", resource)
		}
		return
	}
	d.metrics.clusterWatchErrors.WithLabelValues(d.cluster, resource).Inc()
	if !failing.Swap(true) {
		msg := "cannot list or watch the connected cluster to discover virtual clusters; retrying, and its virtual clusters keep their last good targets"
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			msg += " (grant the edge's identity manifests/rbac/connected-cluster.yaml in that cluster)"
		}
		d.log.Warn(msg, "resource", resource, "error", err)
		return
	}
	d.log.Debug("cannot list or watch the connected cluster; retrying", "resource", resource, "error", err)
}
