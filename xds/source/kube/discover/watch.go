package discover

import (
	"context"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/xds/source/kube/informer"
)

// startWatching makes d's client and starts its Service informer, once d's Connecting limiter
// (if any) gives a token. It does not wait for the cache.
func (d *Discoverer) startWatching() error {
	conns := &connSet{}
	cfg, err := watchConfig(restConfig(d.upstream), conns)
	if err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	client, err := corev1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return err
	}
	for _, r := range []string{resourceNamespaces, resourceSecrets} {
		d.watchErrors.WithLabelValues(d.cluster, r)
	}
	ctx, stop := context.WithCancel(d.ctx)
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(d.log.With("component", "informer").Handler()))
	w := &watching{ctx: ctx, stop: stop, client: client, httpClient: hc, conns: conns, secrets: map[string]*secretWatch{}}
	d.w = w
	w.services = d.watchServices(w)
	return nil
}

// stopWatching stops d's informers, if it runs any, and closes their connections once they
// have stopped: a cluster back to polling holds no connection.
func (d *Discoverer) stopWatching() {
	w := d.w
	if w == nil {
		return
	}
	d.w = nil
	w.stop()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		w.wg.Wait()
		w.conns.closeAll() // the transport is w's alone (conns.go)
	}()
}

// spawn runs f in a goroutine that stopWatching waits for.
func (w *watching) spawn(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

// watch runs an informer of lw under ctx (a child of w.ctx) until ctx ends, once gate (if not
// nil) lets it; onChange hears of every event, after the cache has it.
func (w *watching) watch(ctx context.Context, stop context.CancelFunc, lw cache.ListerWatcher, obj runtime.Object,
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
	w.spawn(func() {
		if gate == nil || gate(ctx) {
			ctl.RunWithContext(ctx)
		}
	})
	return &watcher{store: store.(cache.Indexer), ctl: ctl, stop: stop}
}

// watchServices watches the Services labelled as vcluster's, of every namespace: the watch's
// first connection, made once d.connecting (if not nil) gives a token.
func (d *Discoverer) watchServices(w *watching) *watcher {
	services := w.client.Services(metav1.NamespaceAll)
	list, watchFn := selected(services.List, services.Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = vclusterSelector
	})
	var gate func(context.Context) bool
	if d.connecting != nil {
		gate = func(ctx context.Context) bool { return d.connecting.Wait(ctx) == nil }
	}
	lw := d.health.ListWatch(resourceServices, list, watchFn)
	ctx, stop := context.WithCancel(w.ctx)
	sw := w.watch(ctx, stop, lw, &corev1.Service{}, informer.Slim,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, func(any) { d.changed() }, gate)
	// The events of the initial list may be built before the cache counts as synced: one more
	// signal once it is, so that the first build with the full picture happens.
	w.onSynced(ctx, sw, func() {
		d.log.Info("virtual-cluster discovery synced", "services", len(sw.store.ListKeys()))
		d.changed()
	})
	return sw
}

// watchNamespaces watches namespaces, for the project label of a vcluster's.
func (d *Discoverer) watchNamespaces(w *watching) *watcher {
	namespaces := w.client.Namespaces()
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
	ctx, stop := context.WithCancel(w.ctx)
	nw := w.watch(ctx, stop, lw, &corev1.Namespace{}, slim, nil, func(obj any) {
		// A namespace matters only if a vcluster runs in it; most namespaces have none.
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			if svcs, err := w.services.store.ByIndex(cache.NamespaceIndex, key); err == nil && len(svcs) > 0 {
				d.changed()
			}
		}
	}, nil)
	// The vclusters wait for this cache (pending): say when it is there.
	w.onSynced(ctx, nw, d.changed)
	return nw
}

// onSynced calls f once sw's cache is synced, unless ctx ends first. It waits on the informer's
// channel rather than polling (cache.WaitForCacheSync polls every 100 ms, which thousands of
// connected clusters that cannot be reached would do for ever).
func (w *watching) onSynced(ctx context.Context, sw *watcher, f func()) {
	w.spawn(func() {
		select {
		case <-sw.ctl.HasSyncedChecker().Done():
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

// virtualClusters lists the virtual clusters of svcs, the vcluster Services of the synced
// cache. It also starts the watch of each one's Secret, and of the namespaces while there are
// any, and stops those no longer needed.
func (d *Discoverer) virtualClusters(svcs []*corev1.Service) []VirtualCluster {
	w := d.w
	d.watchSecrets(w, svcs)
	switch {
	case len(svcs) > 0 && w.namespaces == nil:
		w.namespaces = d.watchNamespaces(w)
	case len(svcs) == 0 && w.namespaces != nil:
		w.namespaces.stop()
		w.namespaces = nil
	}
	out := make([]VirtualCluster, 0, len(svcs))
	for _, svc := range svcs {
		v := VirtualCluster{Key: svc.Namespace + "/" + svc.Name, UID: svc.UID, cluster: d.cluster, svc: svc}
		secret, synced := w.secret(v.Key)
		if !synced || !w.namespaces.synced() {
			v.Pending = true
			out = append(out, v)
			continue
		}
		labels, nsVersion := w.namespaceLabels(svc.Namespace)
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
func (w *watching) vclusterServices() []*corev1.Service {
	var out []*corev1.Service
	for _, obj := range w.services.store.List() {
		if svc, ok := obj.(*corev1.Service); ok && isVClusterService(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// namespaceLabels are the labels of a cached namespace (nil if unknown), and its version.
func (w *watching) namespaceLabels(name string) (map[string]string, string) {
	obj, ok, _ := w.namespaces.store.GetByKey(name)
	if !ok {
		return nil, ""
	}
	ns := obj.(*corev1.Namespace)
	return ns.Labels, ns.ResourceVersion
}

// watchSecrets starts the Secret informer of each Service that has none, and stops those of
// Services that are gone.
func (d *Discoverer) watchSecrets(w *watching, svcs []*corev1.Service) {
	want := make(map[string]bool, len(svcs))
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		want[key] = true
		if _, ok := w.secrets[key]; ok {
			continue
		}
		w.secrets[key] = d.startSecretWatch(w, svc.Namespace, vclusterSecretName(svc.Name))
	}
	for key, sw := range w.secrets {
		if !want[key] {
			sw.stop()
			delete(w.secrets, key)
		}
	}
}

func (d *Discoverer) startSecretWatch(w *watching, ns, name string) *secretWatch {
	secrets := w.client.Secrets(ns)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	list, watchFn := selected(secrets.List, secrets.Watch, func(o *metav1.ListOptions) {
		o.FieldSelector = selector
	})
	lw := d.health.ListWatch(resourceSecrets, list, watchFn)
	ctx, stop := context.WithCancel(w.ctx)
	sw := w.watch(ctx, stop, lw, &corev1.Secret{}, informer.Slim, nil, func(any) { d.changed() }, nil)
	// A Secret that does not exist yields no event: signal once the (empty) cache is synced, so
	// that the vcluster is reported rather than left pending.
	w.onSynced(ctx, sw, d.changed)
	return &secretWatch{watcher: sw, key: ns + "/" + name}
}

// secret returns the cached kubeconfig Secret of the vcluster Service key, and whether its
// cache is synced (if not, the Secret's absence means nothing yet).
func (w *watching) secret(key string) (secret *corev1.Secret, synced bool) {
	sw, ok := w.secrets[key]
	if !ok || !sw.synced() {
		return nil, false
	}
	obj, ok, _ := sw.store.GetByKey(sw.key)
	if !ok {
		return nil, true
	}
	return obj.(*corev1.Secret), true
}
