package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/logbuf"
	"github.com/keygate-dev/keygate/internal/metricstest"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/translate"
)

type fixture struct {
	srv *Server
	reg *prometheus.Registry
	log *logbuf.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ca, err := pki.NewCA("edge CA")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.Server("edge", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{reg: prometheus.NewRegistry(), log: &logbuf.Buffer{}}
	f.srv, err = New(Options{
		Translate:  translate.Options{ListenAddress: "127.0.0.1", ListenPort: 8443, ServingCert: serving.CertPEM, ServingKey: serving.KeyPEM},
		Log:        slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clusters is a model of plain-HTTP connected clusters with the names given.
func clusters(names ...string) model.Model {
	var ts []model.Target
	for _, n := range names {
		ts = append(ts, model.Target{
			Ref:      edgepath.Ref{Kind: edgepath.KindCluster, Cluster: n},
			Upstream: model.Upstream{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:6443"}},
		})
	}
	return model.New(ts...)
}

// broken is a model that cannot be translated: an https upstream without a CA.
func broken() model.Model {
	return model.New(model.Target{
		Ref:      edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"},
		Upstream: model.Upstream{URL: &url.URL{Scheme: "https", Host: "127.0.0.1:6443"}},
	})
}

func (f *fixture) reloads(result string) float64 {
	return testutil.ToFloat64(f.srv.metrics.reloads.WithLabelValues(result))
}

func TestMetricNamesLint(t *testing.T) {
	f := newFixture(t)
	if err := f.srv.Update(context.Background(), clusters("demo")); err != nil {
		t.Fatal(err)
	}
	mfs := metricstest.Lint(t, f.reg)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{
		"keygate_xds_config_last_reload_success_timestamp_seconds",
		"keygate_xds_config_reloads_total",
		"keygate_xds_connected_envoys",
		"keygate_xds_nacks_total",
		"keygate_xds_pushes_total",
		"keygate_xds_targets",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestUpdate(t *testing.T) {
	type step struct {
		model   model.Model
		wantErr string
		result  string
		// published is whether the version changes.
		published bool
	}
	tests := map[string][]step{
		"first model is published": {
			{model: clusters("demo"), result: ResultApplied, published: true},
		},
		"same model again pushes nothing": {
			{model: clusters("demo"), result: ResultApplied, published: true},
			{model: clusters("demo"), result: ResultUnchanged},
		},
		"a changed model is published": {
			{model: clusters("demo"), result: ResultApplied, published: true},
			{model: clusters("demo", "staging"), result: ResultApplied, published: true},
			{model: clusters("demo"), result: ResultApplied, published: true},
		},
		"an untranslatable model keeps the last good one": {
			{model: clusters("demo"), result: ResultApplied, published: true},
			{model: broken(), wantErr: "has no CA", result: ResultRejected},
			{model: clusters("demo"), result: ResultUnchanged},
		},
		"no targets is a valid configuration": {
			{model: model.New(), result: ResultApplied, published: true},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			if err := f.srv.Ready(context.Background()); err == nil {
				t.Error("ready before the first configuration")
			}
			for i, s := range steps {
				before, count := f.srv.Version(), f.reloads(s.result)
				err := f.srv.Update(context.Background(), s.model)
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("step %d: Update error %v, want %q", i, err, s.wantErr)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if changed := f.srv.Version() != before; changed != s.published {
					t.Errorf("step %d: version changed = %v, want %v", i, changed, s.published)
				}
				if got := f.reloads(s.result); got != count+1 {
					t.Errorf("step %d: reloads{result=%q} = %v, want %v", i, s.result, got, count+1)
				}
			}
			if err := f.srv.Ready(context.Background()); err != nil {
				t.Errorf("not ready after a published configuration: %v", err)
			}
		})
	}
}

func TestTargetsGauge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.srv.Update(ctx, clusters("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Update(ctx, clusters("a")); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.srv.metrics.targets.WithLabelValues("cluster")); got != 1 {
		t.Errorf("targets{kind=cluster} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.targets.WithLabelValues("grafana")); got != 0 {
		t.Errorf("targets{kind=grafana} = %v, want 0", got)
	}
	f.srv.SourceError(errors.New("bad file"))
	if got := f.reloads(ResultInvalid); got != 1 {
		t.Errorf("reloads{result=invalid} = %v, want 1", got)
	}
}

// adsClient is one Envoy's delta ADS stream, driven by hand.
type adsClient struct {
	t      testing.TB
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	cancel context.CancelFunc
}

// endpoint is a served xds: its address and the control plane's certificates.
type endpoint struct {
	addr string
	cp   *pki.ControlPlane
}

// serve serves f over mutual TLS, as xds does, with fresh control-plane certificates.
func serve(t testing.TB, f *fixture) endpoint {
	t.Helper()
	cp, err := pki.WriteControlPlane(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := grpctls.Config{CertFile: cp.ServerCertFile, KeyFile: cp.ServerKeyFile, ClientCAFile: cp.CAFile}.ServerCredentials(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, l, creds) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return endpoint{addr: l.Addr().String(), cp: cp}
}

// dialADS opens a delta ADS stream to e as Envoy does, with Envoy's client certificate.
func dialADS(t testing.TB, e endpoint) *adsClient {
	t.Helper()
	cfg, err := grpctls.ClientConfig(e.cp.CAFile, e.cp.EnvoyCertFile, e.cp.EnvoyKeyFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return openADS(t, e.addr, credentials.NewTLS(cfg))
}

func openADS(t testing.TB, addr string, creds credentials.TransportCredentials) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		// The first response at 10,000 targets (BenchmarkUpdate) is megabytes; Envoy sets no limit.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &adsClient{t: t, stream: stream, cancel: cancel}
}

func (c *adsClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits for the next response; the deadline only bounds a broken test.
func (c *adsClient) recv() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	type result struct {
		resp *discoveryv3.DeltaDiscoveryResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := c.stream.Recv()
		ch <- result{resp, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			c.t.Fatal(r.err)
		}
		return r.resp
	case <-time.After(10 * time.Second):
		c.t.Fatal("no response within 10s")
		return nil
	}
}

func names(resp *discoveryv3.DeltaDiscoveryResponse) []string {
	var ns []string
	for _, r := range resp.Resources {
		ns = append(ns, r.Name)
	}
	slices.Sort(ns)
	return ns
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeltaADS drives the server the way Envoy does, over a real gRPC stream: subscribe, ACK,
// receive only what changed, NACK, disconnect.
func TestDeltaADS(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.srv.Update(ctx, clusters("demo")); err != nil {
		t.Fatal(err)
	}
	c := dialADS(t, serve(t, f))

	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeOf("envoy-1"), TypeUrl: resource.ClusterType})
	resp := c.recv()
	if diff := cmp.Diff([]string{"cluster_demo"}, names(resp)); diff != "" {
		t.Fatalf("first clusters (-want +got):\n%s", diff)
	}
	eventually(t, "connected_envoys == 1", func() bool { return testutil.ToFloat64(f.srv.metrics.connected) == 1 })
	pushes := func() float64 { return testutil.ToFloat64(f.srv.metrics.pushes.WithLabelValues("cluster")) }
	// The push is counted before it is written, so it is counted once the client has it.
	if got := pushes(); got != 1 {
		t.Errorf("pushes_total{type=cluster} = %v after the first response, want 1", got)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.Nonce})

	// The same model again pushes nothing; the next response is for the next real change, and
	// carries only the new cluster.
	if err := f.srv.Update(ctx, clusters("demo")); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Update(ctx, clusters("demo", "staging")); err != nil {
		t.Fatal(err)
	}
	resp = c.recv()
	if diff := cmp.Diff([]string{"cluster_staging"}, names(resp)); diff != "" {
		t.Errorf("delta after adding staging (-want +got):\n%s", diff)
	}

	// A NACK is counted and logged.
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster_staging: bad TLS context"}})
	eventually(t, "nacks_total{type=cluster} == 1", func() bool {
		return testutil.ToFloat64(f.srv.metrics.nacks.WithLabelValues("cluster")) == 1
	})
	if log := f.log.String(); !strings.Contains(log, "Envoy rejected the configuration (NACK)") ||
		!strings.Contains(log, "cluster_staging: bad TLS context") || !strings.Contains(log, "node=envoy-1") {
		t.Errorf("NACK not logged with its node and reason:\n%s", log)
	}

	// Removing a target removes its cluster.
	if err := f.srv.Update(ctx, clusters("demo")); err != nil {
		t.Fatal(err)
	}
	resp = c.recv()
	if diff := cmp.Diff([]string{"cluster_staging"}, resp.RemovedResources); diff != "" || len(resp.Resources) != 0 {
		t.Errorf("delta after removing staging: resources %v, removed (-want +got):\n%s", names(resp), diff)
	}
	if got := pushes(); got != 3 {
		t.Errorf("pushes_total{type=cluster} = %v after three responses, want 3", got)
	}

	c.cancel()
	eventually(t, "connected_envoys == 0", func() bool { return testutil.ToFloat64(f.srv.metrics.connected) == 0 })
}

// TestEveryEnvoyGetsTheSameConfiguration: node ids differ between replicas; the configuration
// does not.
func TestEveryEnvoyGetsTheSameConfiguration(t *testing.T) {
	f := newFixture(t)
	if err := f.srv.Update(context.Background(), clusters("demo")); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, f)
	for _, node := range []string{"edge-0", "edge-1"} {
		c := dialADS(t, addr)
		for _, tc := range []struct{ typ, want string }{
			{resource.ListenerType, translate.ListenerName},
			{resource.RouteType, translate.RouteConfigName},
			{resource.ClusterType, "cluster_demo"},
		} {
			req := &discoveryv3.DeltaDiscoveryRequest{Node: nodeOf(node), TypeUrl: tc.typ}
			if tc.typ == resource.RouteType {
				req.ResourceNamesSubscribe = []string{translate.RouteConfigName}
			}
			c.send(req)
			if diff := cmp.Diff([]string{tc.want}, names(c.recv())); diff != "" {
				t.Errorf("node %s, %s (-want +got):\n%s", node, shortType(tc.typ), diff)
			}
		}
	}
}

func nodeOf(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: "keygate-edge"} }
