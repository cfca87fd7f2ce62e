package discover

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
}

func newFakeAPI(t *testing.T, svcs ...*corev1.Service) *fakeAPI {
	a := &fakeAPI{t: t, services: map[string]*corev1.Service{}, version: 1, requests: map[string]int{}, open: map[string]int{}, svcWatches: map[chan string]bool{}}
	for _, svc := range svcs {
		a.services[svc.Name] = svc
	}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
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

func startDiscoverer(t *testing.T, api *fakeAPI) (*Discoverer, chan struct{}) {
	changed := make(chan struct{}, 1)
	d, err := Start("conn", api.upstream(t), Options{
		Log:         slog.New(slog.DiscardHandler),
		WatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"cluster", "resource"}),
		Changed: func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d, changed
}

// waitFor calls VirtualClusters after each change signal until ok accepts what it returns.
func waitFor(t *testing.T, d *Discoverer, changed chan struct{}, what string, ok func([]VirtualCluster) bool) []VirtualCluster {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if d.Synced() {
			if vs := d.VirtualClusters(); ok(vs) {
				return vs
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A connected cluster without vcluster Services costs one watch, of Services: discovery neither
// lists nor watches its namespaces or Secrets. The first vcluster Service starts the namespace
// and Secret watches (its project comes from the namespace, as before), and its deletion stops
// them.
func TestDiscoveryWatchesOnlyWhatVirtualClustersNeed(t *testing.T) {
	t.Run("no virtual clusters", func(t *testing.T) {
		api := newFakeAPI(t)
		d, changed := startDiscoverer(t, api)
		waitFor(t, d, changed, "synced", func(vs []VirtualCluster) bool { return len(vs) == 0 })
		time.Sleep(200 * time.Millisecond)
		if n, _ := api.count("/api/v1/services"); n == 0 {
			t.Error("Services neither listed nor watched")
		}
		for _, path := range []string{"/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			if n, _ := api.count(path); n != 0 {
				t.Errorf("%s: %d requests without a vcluster Service, want none", path, n)
			}
		}
	})

	t.Run("a virtual cluster", func(t *testing.T) {
		svc := vclusterService("team-a", "vc1", func(svc *corev1.Service) {
			svc.TypeMeta = metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}
			svc.ResourceVersion = "1"
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		})
		api := newFakeAPI(t, svc)
		d, changed := startDiscoverer(t, api)
		vs := waitFor(t, d, changed, "vc1", func(vs []VirtualCluster) bool { return len(vs) == 1 && !vs[0].Pending })
		r := vs[0].Target()
		if r.Ref.Project != "payments" || r.Err == nil || !strings.Contains(r.Err.Error(), "Secret team-a/vc-vc1 not found") {
			t.Errorf("vc1: project %q, error %v; want project payments (the namespace's label) and its Secret not found", r.Ref.Project, r.Err)
		}
		for _, path := range []string{"/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			if _, open := api.count(path); open != 1 {
				t.Errorf("%s: %d open watches with a vcluster Service, want 1", path, open)
			}
		}

		api.deleteService("vc1")
		waitFor(t, d, changed, "vc1 gone", func(vs []VirtualCluster) bool { return len(vs) == 0 })
		deadline := time.Now().Add(5 * time.Second)
		for _, path := range []string{"/api/v1/namespaces", "/api/v1/namespaces/team-a/secrets"} {
			for {
				_, open := api.count(path)
				if open == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d watches still open after the last vcluster Service went", path, open)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}

// Discoverers started together connect at the pace Options.Connecting allows.
func TestConnectingIsPaced(t *testing.T) {
	const perSecond, n = 20, 5
	connecting := flowcontrol.NewTokenBucketRateLimiter(perSecond, 1)
	api := newFakeAPI(t)
	began := time.Now()
	var ds []*Discoverer
	for range n {
		d, err := Start("conn", api.upstream(t), Options{
			Log:         slog.New(slog.DiscardHandler),
			WatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"cluster", "resource"}),
			Changed:     func() {},
			Connecting:  connecting,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		ds = append(ds, d)
	}
	for _, d := range ds {
		for !d.Synced() {
			if time.Since(began) > 10*time.Second {
				t.Fatal("not synced after 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if took, least := time.Since(began), (n-1)*time.Second/perSecond; took < least {
		t.Errorf("%d discoverers synced in %s, want at least %s at %d a second", n, took, least, perSecond)
	}
}
