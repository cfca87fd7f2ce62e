// Package discover finds the virtual clusters that vcluster runs in a connected cluster
// (vcluster.go: its conventions), by polling that cluster while it has none (poll.go) and with
// informers in it once it has some (watch.go; mode.go decides), reached with the edge's own
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
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"

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
	// WatchErrors counts failed polls, lists and watches, by cluster and resource
	// (keygate_xds_kube_cluster_watch_errors_total).
	WatchErrors *prometheus.CounterVec
	// ModeChanges counts the switches from one mode to the other, by the mode switched to
	// (keygate_xds_kube_discovery_mode_changes_total).
	ModeChanges *prometheus.CounterVec
	// Changed is called when something the cluster's virtual clusters are made of changes.
	Changed func()
	// Poller polls the cluster while it is in Polled mode. Required.
	Poller *Poller
	// Watch starts the Discoverer watching rather than polling: for one that replaces a
	// watched Discoverer (a new credential), so that the cluster's virtual clusters do not
	// wait for a poll.
	Watch bool
	// Connecting, if set, is shared by the Discoverers of every connected cluster: each waits
	// for one of its tokens before it starts watching. Thousands of Discoverers started
	// together (xds starting with thousands of Clusters) would otherwise all handshake at
	// once: they would time out and retry (client-go's TLS handshake timeout is 10 s), and
	// take the CPU that xds and the Envoys on the same machine need then. A rate, not a
	// number of connections in flight, so that clusters that cannot be reached hold no one up.
	// The Poller's limiter paces polls; the Source shares one between both.
	Connecting flowcontrol.RateLimiter
}

// Discoverer finds the virtual clusters of one connected cluster. Its polls and informers call
// Options.Changed; Discover reads what they found.
//
// A connected cluster is polled (Mode Polled) until a poll finds a vcluster Service, then
// watched (Watched) until its last vcluster Service goes: xds may be connected to thousands of
// clusters, most of them without virtual clusters, and a watch holds a TLS connection to each
// (some 40 KB of heap in xds, most of it the connection's TLS and HTTP/2 state). While polled,
// it holds only the upstream's bytes (shared with the source's state); each poll makes its
// client, and closes its connection. While watched, it runs a Service informer (label selector
// app=vcluster), a Namespace informer and one Secret informer per vcluster Service, all over one
// client. Each informer has one consumer, the Discoverer, and so is a plain informer
// (cache.NewInformerWithOptions) rather than a shared one, which would buffer its events for
// other consumers (16 KB each, allocated up front).
type Discoverer struct {
	cluster string
	// fingerprint is the upstream it was built from: a new credential means a new Discoverer.
	fingerprint string
	// upstream reaches the connected cluster; clients are made from it when needed.
	upstream    model.Upstream
	log         *slog.Logger
	changed     func()
	health      *informer.Health
	modeChanges *prometheus.CounterVec
	watchErrors *prometheus.CounterVec
	poller      *Poller
	connecting  flowcontrol.RateLimiter

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	// mode is the current mode; only Discover and Close (one goroutine) read and change it.
	mode Mode
	// polling mirrors mode == Polled (false once closed), for the Poller's goroutines.
	polling atomic.Bool
	// lastPoll is the pollResult of the last successful poll, written by the Poller.
	lastPoll atomic.Int32
	// w is the watching state, nil while polled.
	w *watching
}

// watching is what a Watched Discoverer runs: one client, and its informers.
type watching struct {
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	// client reaches the core API group of the connected cluster, the only one discovery
	// reads: one REST client over one HTTP client (one connection), shared by the informers.
	client     corev1client.CoreV1Interface
	httpClient *http.Client
	conns      *connSet // the connections of httpClient's transport, closed by stopWatching
	services   *watcher
	// namespaces is the informer of namespaces, for the project label of each vcluster's; it
	// runs while the cluster has vcluster Services, else nil. secrets is the informer of each
	// vcluster's vc-<name> Secret, by the Service's key ("namespace/name").
	namespaces *watcher
	secrets    map[string]*secretWatch
}

// watcher is one informer of a Discoverer: its cache, and how to stop it.
type watcher struct {
	store cache.Indexer
	ctl   cache.Controller
	stop  context.CancelFunc
}

// synced reports whether w's cache has filled; a nil watcher has not.
func (w *watcher) synced() bool { return w != nil && w.ctl.HasSynced() }

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

// Start starts discovery in the connected cluster cluster, reached at u: its first poll is
// queued at once (or, with o.Watch, its Service informer started). It does not wait: an
// unreachable cluster must not delay the others, nor the edge.
func Start(cluster string, u model.Upstream, o Options) (*Discoverer, error) {
	d := &Discoverer{
		cluster:     cluster,
		fingerprint: Fingerprint(u),
		upstream:    u,
		log:         o.Log.With("cluster", cluster),
		changed:     o.Changed,
		modeChanges: o.ModeChanges,
		watchErrors: o.WatchErrors,
		poller:      o.Poller,
		connecting:  o.Connecting,
	}
	d.health = newHealth(d.log, cluster, o.WatchErrors)
	d.ctx, d.stop = context.WithCancel(context.Background())
	if o.Watch {
		if err := d.startWatching(); err != nil {
			d.stop()
			return nil, err
		}
		d.mode = Watched
		return d, nil
	}
	d.polling.Store(true)
	d.poller.now(d)
	return d, nil
}

// newHealth follows the connected cluster's polls, lists and watches; a refusal names the RBAC
// to grant. The services series exists from the start, so that increase() alerts work before
// the first failure; those of namespaces and secrets from its first watch (startWatching): a
// polled cluster reads only Services, and at 10,000 clusters each series costs some 700 bytes.
func newHealth(log *slog.Logger, cluster string, watchErrors *prometheus.CounterVec) *informer.Health {
	resources := []string{resourceServices, resourceNamespaces, resourceSecrets}
	watchErrors.WithLabelValues(cluster, resourceServices)
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

// Fingerprint is the Fingerprint of the upstream d was started with.
func (d *Discoverer) Fingerprint() string { return d.fingerprint }

// Mode is d's current mode (call it from the goroutine that calls Discover).
func (d *Discoverer) Mode() Mode { return d.mode }

// Discover switches d's mode if its last poll or its Service cache says so (nextMode), and
// returns the cluster's virtual clusters, and whether they are known: false until the first
// poll succeeds or the Service cache fills (until then the cluster's virtual clusters stay as
// they were: none after a restart of xds, the last good ones after a new credential). Call it
// from one goroutine only.
func (d *Discoverer) Discover() ([]VirtualCluster, bool) {
	o := observation{mode: d.mode, poll: pollResult(d.lastPoll.Load())}
	var svcs []*corev1.Service
	if d.w != nil && d.w.services.synced() {
		svcs = d.w.vclusterServices()
		o.synced, o.vclusters = true, len(svcs)
	}
	if next := nextMode(o); next != d.mode {
		d.switchTo(next, o)
	}
	if d.mode == Polled {
		return nil, pollResult(d.lastPoll.Load()) != pollNone
	}
	if !o.synced {
		return nil, false
	}
	return d.virtualClusters(svcs), true
}

// switchTo moves d to mode next, logs and counts it.
func (d *Discoverer) switchTo(next Mode, o observation) {
	if next == Watched {
		if err := d.startWatching(); err != nil {
			d.log.Error("cannot watch the connected cluster for virtual clusters; polling it still", "error", err)
			d.lastPoll.Store(int32(pollEmpty))
			d.poller.later(d)
			return
		}
		d.polling.Store(false)
		d.mode = Watched
		d.log.Info("vcluster Service found; watching the connected cluster for virtual clusters", "mode", Watched.String())
	} else {
		d.stopWatching()
		// The synced cache said: none. The next poll comes an interval from now.
		d.lastPoll.Store(int32(pollEmpty))
		d.mode = Polled
		d.polling.Store(true)
		d.poller.later(d)
		d.log.Info("no vcluster Service left; polling the connected cluster for virtual clusters", "mode", Polled.String(),
			"interval", d.poller.interval.String())
	}
	d.modeChanges.WithLabelValues(next.String()).Inc()
}

// Close stops d's polls and informers and waits for the informers.
func (d *Discoverer) Close() {
	d.polling.Store(false)
	d.stopWatching()
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
