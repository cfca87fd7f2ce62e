package discover

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
)

const (
	// pollTimeout bounds one poll: a cluster that does not answer (packets dropped) must not
	// hold a poll open for long. A handshake and a small list take well under a second.
	pollTimeout = 15 * time.Second
	// pollPageSize is the limit of each page of a poll's list. The list is label-selected
	// (app=vcluster), so one page is the rule; a page bounds what a cluster whose tenants
	// created many such Services (headless ones, which are not virtual clusters) costs a poll.
	pollPageSize = 100
	// pollWorkers is how many polls may be in flight. A bound, as for any controller's
	// workers: xds's CPU then goes to at most that many handshakes at once, whatever the pace,
	// and the builds of the model keep their share when handshakes are slow (a loaded machine).
	// Each poll of a cluster that does not answer holds a worker up to pollDialTimeout (no
	// answer to the TCP handshake) or pollTimeout: 32 workers keep a minute's interval with up
	// to some 300 such clusters; beyond, polls come later.
	pollWorkers = 32
	// pollDialTimeout bounds a poll's TCP connect.
	pollDialTimeout = 5 * time.Second
	// pollJitter is the fraction of the interval by which each poll comes early, at random,
	// so that polls started together (xds starting) spread over the interval with time.
	pollJitter = 0.2
)

// Results of a poll, the values of the result label of keygate_xds_kube_discovery_polls_total.
const (
	PollFound = "found"
	PollNone  = "none"
	PollError = "error"
)

// errFound stops a poll's list at the first vcluster Service: one is enough to switch to
// watching.
var errFound = errors.New("vcluster Service found")

// Poller polls the connected clusters whose Discoverers are in Polled mode, each about once an
// interval. It is client-go's delaying work queue of Discoverers and pollWorkers workers, as a
// controller's, plus a rate limiter (shared with the start of watches, Options.Connecting) that
// paces the polls' connections: 10,000 clusters polled each minute are about 170 connections a
// second. The workers bound the polls in flight (CPU for handshakes), the rate the connections
// made to the clusters and the CPU they take over time.
type Poller struct {
	interval time.Duration
	limiter  flowcontrol.RateLimiter
	polls    *prometheus.CounterVec
	queue    workqueue.TypedDelayingInterface[*Discoverer]

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

// NewPoller polls each cluster every interval (at most; up to pollJitter earlier), each poll
// waiting for one of limiter's tokens; polls counts them by result
// (keygate_xds_kube_discovery_polls_total). Start it, then Stop it.
func NewPoller(interval time.Duration, limiter flowcontrol.RateLimiter, polls *prometheus.CounterVec) *Poller {
	ctx, stop := context.WithCancel(context.Background())
	for _, r := range []string{PollFound, PollNone, PollError} {
		polls.WithLabelValues(r)
	}
	return &Poller{interval: interval, limiter: limiter, polls: polls, ctx: ctx, stop: stop,
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[*Discoverer]{Name: ""})}
}

// Start starts pollWorkers workers, which poll the Discoverers queued, and those queued later.
func (p *Poller) Start() {
	for range pollWorkers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work()
		}()
	}
}

// Stop stops polling and waits for the polls in flight.
func (p *Poller) Stop() {
	p.once.Do(func() {
		p.stop()
		p.queue.ShutDown()
		p.wg.Wait()
	})
}

// now queues d's poll at once (a new Discoverer: its first virtual clusters are served within a
// second, as with a watch), later one interval from now.
func (p *Poller) now(d *Discoverer)   { p.queue.Add(d) }
func (p *Poller) later(d *Discoverer) { p.queue.AddAfter(d, p.next()) }

// next is the delay before a cluster's next poll: the interval, up to pollJitter less.
func (p *Poller) next() time.Duration {
	early := time.Duration(float64(p.interval) * pollJitter * rand.Float64())
	return p.interval - early
}

// work polls each due Discoverer once the limiter allows, until the queue shuts down.
func (p *Poller) work() {
	for {
		d, shutdown := p.queue.Get()
		if shutdown {
			return
		}
		switch {
		case !d.polling.Load(): // closed, or watched since it was queued
		case p.limiter.Wait(p.ctx) != nil: // stopping
		case d.pollOnce(p.ctx, p.polls):
			p.later(d)
		}
		p.queue.Done(d)
	}
}

// pollOnce polls d's cluster and records what it found; it reports whether d stays polled (its
// next poll to be queued).
func (d *Discoverer) pollOnce(ctx context.Context, polls *prometheus.CounterVec) bool {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel) // a Close cancels the poll in flight
	defer stop()
	found, err := d.poll(ctx)
	switch {
	case err != nil:
		// The last good state stays: the cluster's virtual clusters as they were (none, or those
		// its last watch saw), its mode too. d.health has counted and logged the failure.
		polls.WithLabelValues(PollError).Inc()
		return d.polling.Load()
	case found:
		polls.WithLabelValues(PollFound).Inc()
		d.lastPoll.Store(int32(pollFound))
		d.changed() // the next build switches d to watching
		return false
	}
	polls.WithLabelValues(PollNone).Inc()
	if pollResult(d.lastPoll.Swap(int32(pollEmpty))) == pollNone {
		d.changed() // its first answer: the build may now say the cluster has no virtual clusters
	}
	return d.polling.Load()
}

// poll lists the cluster's vcluster Services (label-selected, paged) over a connection of its
// own, closed when it returns: between polls xds holds nothing for the cluster but its
// credential's bytes. It reports whether there is one.
func (d *Discoverer) poll(ctx context.Context) (bool, error) {
	cfg, err := pollConfig(d.upstream)
	if err != nil {
		return false, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false, err
	}
	client, err := corev1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return false, err
	}
	services := client.Services(metav1.NamespaceAll)
	lw := d.health.ListWatch(resourceServices, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return services.List(ctx, o)
	}, nil)
	p := pager.New(pager.ListPageFunc(lw.ListWithContextFunc))
	p.PageSize = pollPageSize
	err = p.EachListItem(ctx, metav1.ListOptions{LabelSelector: vclusterSelector}, func(obj runtime.Object) error {
		if svc, ok := obj.(*corev1.Service); ok && isVClusterService(svc) {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// pollConfig reaches a connected cluster as restConfig does, over a transport of its own that
// closes each connection after its response (no keep-alive) and speaks HTTP/1.1: a poll is one
// request (or a few pages), so a connection kept idle, or HTTP/2's per-connection state (its
// buffers, its reader goroutine), would be memory held for nothing until the next poll. Not
// client-go's shared transport cache: a transport there lives on while an idle connection
// refers to it, and that connection returns to the idle pool asynchronously, after the caller
// has read the response.
func pollConfig(u model.Upstream) (*rest.Config, error) {
	cfg := restConfig(u)
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: pollDialTimeout}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true,
	}
	return cfg, nil
}
