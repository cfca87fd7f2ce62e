package discover

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/internal/fixture"
)

// fakeAPI is a connected cluster's API server as discovery sees it: lists and watches (with or
// without initial events) of vcluster Services, namespaces and Secrets. It counts the requests
// and open watches of each path, and pushes Service events to the open watches.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	services   map[string]*corev1.Service // by name (namespace team-a)
	version    int
	requests   map[string]int // by path
	open       map[string]int // open watches, by path
	svcWatches map[chan string]bool
	connCount  int // connections open
}

func newFakeAPI(t *testing.T, svcs ...*corev1.Service) *fakeAPI {
	a := &fakeAPI{t: t, services: map[string]*corev1.Service{}, version: 1, requests: map[string]int{}, open: map[string]int{}, svcWatches: map[chan string]bool{}}
	for _, svc := range svcs {
		a.services[svc.Name] = svc
	}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.EnableHTTP2 = true
	a.srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch state {
		case http.StateNew:
			a.connCount++
		case http.StateClosed, http.StateHijacked:
			a.connCount--
		}
	}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// upstream reaches the fake API as discovery would: its CA and a token.
func (a *fakeAPI) upstream(t *testing.T) model.Upstream {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
	return model.Upstream{URL: fixture.MustURL(t, a.srv.URL), CA: ca, Token: "discovery"}
}

func (a *fakeAPI) count(path string) (requests, open int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[path], a.open[path]
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests[r.URL.Path]++
	var items []any
	kind := ""
	switch r.URL.Path {
	case "/api/v1/services":
		kind = "Service"
		for _, svc := range a.services {
			items = append(items, svc)
		}
	case "/api/v1/namespaces":
		kind = "Namespace"
		items = []any{&corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "team-a", ResourceVersion: "1", Labels: map[string]string{v1alpha1.LabelProject: "payments"}}}}
	case "/api/v1/namespaces/team-a/secrets":
		kind = "Secret"
	default:
		a.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	version := fmt.Sprint(a.version)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		json.NewEncoder(w).Encode(map[string]any{"kind": kind + "List", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": version}, "items": items})
		return
	}
	events := make(chan string, 16)
	a.mu.Lock()
	a.open[r.URL.Path]++
	if kind == "Service" {
		a.svcWatches[events] = true
	}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.open[r.URL.Path]--
		delete(a.svcWatches, events)
		a.mu.Unlock()
	}()
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if q.Get("sendInitialEvents") == "true" {
		for _, item := range items {
			enc.Encode(map[string]any{"type": "ADDED", "object": item})
		}
		enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{"kind": kind, "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": version, "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}}})
	}
	http.NewResponseController(w).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-events:
			fmt.Fprintln(w, ev)
			http.NewResponseController(w).Flush()
		}
	}
}

// conns is the number of connections open to the fake API.
func (a *fakeAPI) conns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connCount
}

// addService creates a Service (namespace team-a).
func (a *fakeAPI) addService(svc *corev1.Service) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.version++
	svc.ResourceVersion = fmt.Sprint(a.version)
	a.services[svc.Name] = svc
}

// deleteService deletes a Service and tells the open Service watches.
func (a *fakeAPI) deleteService(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	svc := a.services[name].DeepCopy()
	delete(a.services, name)
	a.version++
	svc.ResourceVersion = fmt.Sprint(a.version)
	ev, err := json.Marshal(map[string]any{"type": "DELETED", "object": svc})
	if err != nil {
		a.t.Fatal(err)
	}
	for ch := range a.svcWatches {
		ch <- string(ev)
	}
}

// testPoller is a Poller for tests: interval, at most 1,000 polls a second.
func testPoller(t *testing.T, interval time.Duration, limiter flowcontrol.RateLimiter) *Poller {
	if limiter == nil {
		limiter = flowcontrol.NewTokenBucketRateLimiter(1000, 1000)
	}
	p := NewPoller(interval, limiter, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polls"}, []string{"result"}))
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

func testOptions(p *Poller, changed func()) Options {
	return Options{
		Log:         slog.New(slog.DiscardHandler),
		WatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"cluster", "resource"}),
		ModeChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "changes"}, []string{"mode"}),
		Changed:     changed,
		Poller:      p,
	}
}

// startDiscoverer starts a Discoverer of api polled every interval.
func startDiscoverer(t *testing.T, api *fakeAPI, interval time.Duration) (*Discoverer, chan struct{}) {
	changed := make(chan struct{}, 1)
	d, err := Start("conn", api.upstream(t), testOptions(testPoller(t, interval, nil), func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, changed
}

// waitFor calls Discover after each change signal until ok accepts what it returns once known.
func waitFor(t *testing.T, d *Discoverer, changed chan struct{}, what string, ok func([]VirtualCluster) bool) []VirtualCluster {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if vs, known := d.Discover(); known && ok(vs) {
			return vs
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connected cluster without vcluster Services is polled: its Services are listed, never
// watched, its namespaces and Secrets neither listed nor watched, and no connection stays open
// between polls. A poll that finds a vcluster Service switches it to watching: the Service,
// namespace and Secret watches start (its project comes from the namespace, as before); the
// Service's deletion switches it back to polling: the watches stop and the connection closes.
func TestDiscoveryWatchesOnlyWhatVirtualClustersNeed(t *testing.T) {
	t.Run("no virtual clusters", func(t *testing.T) {
		api := newFakeAPI(t)
		d, changed := startDiscoverer(t, api, 100*time.Millisecond)
		waitFor(t, d, changed, "known", func(vs []VirtualCluster) bool { return len(vs) == 0 })
		eventually(t, "a second poll", func() bool { n, _ := api.count("/api/v1/services"); return n >= 2 })
		if _, open := api.count("/api/v1/services"); open != 0 {
			t.Errorf("%d open watches of Services without a vcluster Service, want none", open)
		}
		for _, path := range []string{"/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			if n, _ := api.count(path); n != 0 {
				t.Errorf("%s: %d requests without a vcluster Service, want none", path, n)
			}
		}
		eventually(t, "no connection open between polls", func() bool { return api.conns() == 0 })
		if d.Mode() != Polled {
			t.Errorf("mode %s, want polled", d.Mode())
		}
	})

	t.Run("a virtual cluster", func(t *testing.T) {
		api := newFakeAPI(t)
		d, changed := startDiscoverer(t, api, 100*time.Millisecond)
		waitFor(t, d, changed, "known", func(vs []VirtualCluster) bool { return len(vs) == 0 })
		api.addService(vclusterService("team-a", "vc1", func(svc *corev1.Service) {
			svc.TypeMeta = metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		}))
		vs := waitFor(t, d, changed, "vc1", func(vs []VirtualCluster) bool { return len(vs) == 1 && !vs[0].Pending })
		if d.Mode() != Watched {
			t.Errorf("mode %s with a vcluster Service, want watched", d.Mode())
		}
		r := vs[0].Target()
		if r.Ref.Project != "payments" || r.Err == nil || !strings.Contains(r.Err.Error(), "Secret team-a/vc-vc1 not found") {
			t.Errorf("vc1: project %q, error %v; want project payments (the namespace's label) and its Secret not found", r.Ref.Project, r.Err)
		}
		for _, path := range []string{"/api/v1/services", "/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			if _, open := api.count(path); open != 1 {
				t.Errorf("%s: %d open watches with a vcluster Service, want 1", path, open)
			}
		}

		api.deleteService("vc1")
		waitFor(t, d, changed, "vc1 gone", func(vs []VirtualCluster) bool { return len(vs) == 0 })
		if d.Mode() != Polled {
			t.Errorf("mode %s after the last vcluster Service went, want polled", d.Mode())
		}
		for _, path := range []string{"/api/v1/services", "/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			eventually(t, path+" watch closed", func() bool { _, open := api.count(path); return open == 0 })
		}
		eventually(t, "no connection open once polled again", func() bool { return api.conns() == 0 })
	})
}

// A poll that fails keeps what the cluster last had: a Discoverer whose cluster cannot be
// reached knows nothing (its virtual clusters stay as they were), and is polled again.
func TestPollErrorKeepsState(t *testing.T) {
	api := newFakeAPI(t)
	api.srv.Close()
	polls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polls"}, []string{"result"})
	p := NewPoller(50*time.Millisecond, flowcontrol.NewTokenBucketRateLimiter(1000, 1000), polls)
	p.Start()
	t.Cleanup(p.Stop)
	o := testOptions(p, func() {})
	d, err := Start("conn", api.upstream(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	eventually(t, "two failed polls", func() bool { return testutil.ToFloat64(polls.WithLabelValues(PollError)) >= 2 })
	if _, known := d.Discover(); known {
		t.Error("known after failed polls only, want unknown (the virtual clusters stay as they were)")
	}
	if n := testutil.ToFloat64(o.WatchErrors.WithLabelValues("conn", resourceServices)); n < 2 {
		t.Errorf("watch errors of services = %v, want at least 2", n)
	}
	if d.Mode() != Polled {
		t.Errorf("mode %s, want polled", d.Mode())
	}
}

// Discoverers started together poll at the pace of the Poller's limiter.
func TestConnectingIsPaced(t *testing.T) {
	const perSecond, n = 20, 5
	api := newFakeAPI(t)
	p := testPoller(t, time.Hour, flowcontrol.NewTokenBucketRateLimiter(perSecond, 1))
	began := time.Now()
	var ds []*Discoverer
	for range n {
		d, err := Start("conn", api.upstream(t), testOptions(p, func() {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		ds = append(ds, d)
	}
	for _, d := range ds {
		eventually(t, "each discoverer's first poll", func() bool { _, known := d.Discover(); return known })
	}
	if took, least := time.Since(began), (n-1)*time.Second/perSecond; took < least {
		t.Errorf("%d discoverers polled in %s, want at least %s at %d a second", n, took, least, perSecond)
	}
}
