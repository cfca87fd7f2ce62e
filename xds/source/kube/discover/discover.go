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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
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
}

// Discoverer finds the virtual clusters of one connected cluster. Its informers call
// Options.Changed; VirtualClusters reads their caches.
type Discoverer struct {
	cluster string
	// fingerprint is the upstream it was built from: a new credential means a new Discoverer.
	fingerprint string
	log         *slog.Logger
	changed     func()
	client      kubernetes.Interface
	health      *informer.Health

	services, namespaces cache.SharedIndexInformer

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// secrets is the informer of each vcluster's vc-<name> Secret, by the Service's key
	// ("namespace/name"). Only VirtualClusters and Close (one goroutine) start and stop them.
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

// Start starts the Service and Namespace informers of the connected cluster cluster, reached
// at u. It does not wait for them: an unreachable cluster must not delay the others, nor the
// edge.
func Start(cluster string, u model.Upstream, o Options) (*Discoverer, error) {
	client, err := kubernetes.NewForConfig(restConfig(u))
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
	d.services = d.newServiceInformer()
	d.namespaces = d.newNamespaceInformer()
	if err := d.setUp(); err != nil {
		return nil, err
	}
	d.run()
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

// newServiceInformer watches the Services labelled as vcluster's, of every namespace.
func (d *Discoverer) newServiceInformer() cache.SharedIndexInformer {
	services := d.client.CoreV1().Services(metav1.NamespaceAll)
	list, watchFn := selected(services.List, services.Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = vclusterSelector
	})
	lw := d.health.ListWatch(resourceServices, list, watchFn)
	return cache.NewSharedIndexInformer(lw, &corev1.Service{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// newNamespaceInformer watches namespaces, for the project label of a vcluster's.
func (d *Discoverer) newNamespaceInformer() cache.SharedIndexInformer {
	namespaces := d.client.CoreV1().Namespaces()
	lw := d.health.ListWatch(resourceNamespaces, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return namespaces.List(ctx, o)
	}, namespaces.Watch)
	return cache.NewSharedIndexInformer(lw, &corev1.Namespace{}, 0, cache.Indexers{})
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

// setUp registers the transforms and event handlers, which must precede the informers' start.
func (d *Discoverer) setUp() error {
	if err := d.services.SetTransform(informer.Slim); err != nil {
		return err
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
		return err
	}
	if _, err := d.services.AddEventHandler(informer.OnChange(func(any) { d.changed() })); err != nil {
		return err
	}
	// A namespace matters only if a vcluster runs in it; most namespaces have none.
	_, err := d.namespaces.AddEventHandler(informer.OnChange(func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			if svcs, err := d.services.GetIndexer().ByIndex(cache.NamespaceIndex, key); err == nil && len(svcs) > 0 {
				d.changed()
			}
		}
	}))
	return err
}

// run starts the Service and Namespace informers.
func (d *Discoverer) run() {
	ctx, stop := context.WithCancel(context.Background())
	d.ctx = klog.NewContext(ctx, logr.FromSlogHandler(d.log.With("component", "informer").Handler()))
	d.stop = stop
	for _, inf := range []cache.SharedIndexInformer{d.services, d.namespaces} {
		d.spawn(func() { inf.RunWithContext(d.ctx) })
	}
	// The events of the initial list may be built before the caches count as synced: one more
	// signal once they are, so that the first build with the full picture happens.
	d.spawn(func() {
		if cache.WaitForCacheSync(d.ctx.Done(), d.services.HasSynced, d.namespaces.HasSynced) {
			d.log.Info("virtual-cluster discovery synced", "services", len(d.services.GetStore().ListKeys()))
			d.changed()
		}
	})
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

// Synced reports whether the Service and Namespace caches have been filled once. Until then,
// the cluster's virtual clusters stay as they were (none after a restart of xds).
func (d *Discoverer) Synced() bool { return d.services.HasSynced() && d.namespaces.HasSynced() }

// Close stops every informer of the Discoverer and waits for them.
func (d *Discoverer) Close() {
	for key, sw := range d.secrets {
		sw.stop()
		delete(d.secrets, key)
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
	// Pending is set while the cache of its Secret fills: there is nothing to say about it yet.
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
// also starts the watch of each one's Secret, and stops those of Services that are gone; call
// it from one goroutine only.
func (d *Discoverer) VirtualClusters() []VirtualCluster {
	svcs := d.vclusterServices()
	d.watchSecrets(svcs)
	out := make([]VirtualCluster, 0, len(svcs))
	for _, svc := range svcs {
		v := VirtualCluster{Key: svc.Namespace + "/" + svc.Name, UID: svc.UID, cluster: d.cluster, svc: svc}
		secret, synced := d.secret(v.Key)
		if !synced {
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
	for _, obj := range d.services.GetStore().List() {
		if svc, ok := obj.(*corev1.Service); ok && isVClusterService(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// namespaceLabels are the labels of a cached namespace (nil if unknown), and its version.
func (d *Discoverer) namespaceLabels(name string) (map[string]string, string) {
	obj, ok, _ := d.namespaces.GetStore().GetByKey(name)
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
	secrets := d.client.CoreV1().Secrets(ns)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	list, watchFn := selected(secrets.List, secrets.Watch, func(o *metav1.ListOptions) {
		o.FieldSelector = selector
	})
	lw := d.health.ListWatch(resourceSecrets, list, watchFn)
	inf := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	_ = inf.SetTransform(informer.Slim) // cannot fail before the informer runs
	_, _ = inf.AddEventHandler(informer.OnChange(func(any) { d.changed() }))
	ctx, stop := context.WithCancel(d.ctx)
	sw := &secretWatch{informer: inf, stop: stop, key: ns + "/" + name}
	d.spawn(func() { inf.RunWithContext(ctx) })
	// A Secret that does not exist yields no event: signal once the (empty) cache is synced, so
	// that the vcluster is reported rather than left pending.
	d.spawn(func() {
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			d.changed()
		}
	})
	return sw
}

// secret returns the cached kubeconfig Secret of the vcluster Service key, and whether its
// cache is synced (if not, the Secret's absence means nothing yet).
func (d *Discoverer) secret(key string) (secret *corev1.Secret, synced bool) {
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
