package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
)

// staticClusters are the clusters of Envoy's bootstrap (xds, extauthz), which
// cluster_manager.active_clusters counts beside the targets'.
const staticClusters = 2

// benchEnv is what every run shares: the PKI, the upstream and the allow-all ext_authz.
type benchEnv struct {
	dir, envoyBin, xdsBin string
	samples               int

	edgeCA *pki.CA
	// The upstreams' CA and the edge's client certificate, for the Kubernetes source's Secrets.
	upstreamCA *pki.CA
	edgeClient pki.Pair
	upstream   *upstream
	authz      *grpc.Server
	authzAddr  string
	client     *http.Client
}

func newBenchEnv(dir, envoyBin, xdsBin string, samples int) (*benchEnv, error) {
	e := &benchEnv{dir: dir, envoyBin: envoyBin, xdsBin: xdsBin, samples: samples}
	var err error
	if e.edgeCA, err = pki.NewCA("bench edge CA"); err != nil {
		return nil, err
	}
	serving, err := e.edgeCA.Server("edge", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	upstreamCA, err := pki.NewCA("bench upstream CA")
	if err != nil {
		return nil, err
	}
	edgeClient, err := upstreamCA.Client("keygate-edge")
	if err != nil {
		return nil, err
	}
	if _, _, err := serving.Write(dir, "serving"); err != nil {
		return nil, err
	}
	if _, _, err := edgeClient.Write(dir, "edge"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "upstream-ca.crt"), upstreamCA.CertPEM, 0o644); err != nil {
		return nil, err
	}
	e.upstreamCA, e.edgeClient = upstreamCA, edgeClient
	if e.upstream, err = newUpstream(upstreamCA); err != nil {
		return nil, err
	}
	if e.authz, e.authzAddr, err = startAllowAll(); err != nil {
		return nil, err
	}
	e.client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: e.edgeCA.Pool()},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 16,
		},
	}
	return e, nil
}

func (e *benchEnv) close() {
	e.upstream.close()
	if e.authz != nil {
		e.authz.Stop()
	}
}

// result is what one run measured. Durations are wall-clock; CPU is utime+stime.
type result struct {
	N      int
	Source string
	Setup  time.Duration // declaring the N targets (file written; objects created), before xds starts

	// Initial load: xds started with N targets, then Envoy.
	XDSReady       time.Duration // xds exec → /readyz 200 (targets loaded, translated, published)
	EnvoyStats     time.Duration // Envoy exec → admin stats show every cluster active, the listener and the routes
	EnvoySampled   time.Duration // Envoy exec → every sampled target answered from its upstream
	Initial        usage         // xds after the initial load and push (CPU total, HWM since start)
	InitialSteady  int64         // xds RSS 3s after Envoy served, bytes
	InitialHeap    int64         // xds Go heap in use then (go_memstats_heap_inuse_bytes): live data, unlike RSS
	InitialFDs     int           // xds open file descriptors then (sockets: Envoy, API servers, connected clusters)
	EnvoyInitial   usage         // Envoy after the initial load
	EnvoySteadyRSS int64

	Add, Move change // one target added; one target's upstream moved (Envoy connected only)

	Full                traffic // the whole configuration, as a new delta ADS client receives it
	AddBytes, MoveBytes traffic // what that client receives for another add and another move
}

// change is one target change as Envoy sees it.
type change struct {
	Latency time.Duration // targets file renamed into place → a request through Envoy reaches the new upstream
	XDSCPU  time.Duration // xds CPU for the change (until 2s after it was served)
	XDSPeak int64         // xds VmHWM during the change (reset before it), bytes
	XDSRSS  int64         // xds RSS after it, bytes
	// Published is when xds logged "configuration published" for the change, from the change:
	// the share of Latency that is xds's (the rest is the push and Envoy).
	Published time.Duration
}

// runState is one xds and one Envoy with n targets.
type runState struct {
	*benchEnv
	n      int
	src    targetSource
	runDir string       // this run's logs, bootstrap and source state
	moved  map[int]bool // targets whose upstream moved
	// Each address as dialled (…Addr) and as a URL.
	grpcAddr, xdsHTTPAddr, edgeAddr, adminAddr string
	xdsHTTP, edgeURL, adminURL                 string
	xds, envoy                                 *proc.Process
	// stops are what stop undoes, in the order started: it runs them last first, so that each
	// part outlives what depends on it.
	stops []func()
}

// url is target i's upstream URL now.
func (s *runState) url(i int) string { return s.upstream.url(s.moved[i]) }

// measure runs xds and Envoy with n targets from src and measures the initial load, one add
// and one move, and the xDS traffic of each.
func (e *benchEnv) measure(ctx context.Context, src targetSource, n int) (*result, error) {
	s, err := e.newRunState(src, n)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	r := &result{N: n, Source: src.name()}
	sample := e.sampleTargets(n)
	addA, addB := n, n+1       // added: one with Envoy alone, one with the ADS client
	moveA, moveB := n/2, n/2+1 // moved: likewise

	srcArgs, err := s.declareTargets(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.startXDS(ctx, r, srcArgs); err != nil {
		return nil, err
	}
	if err := s.startEnvoy(ctx, r, sample); err != nil {
		return nil, err
	}
	if err := s.measureSteady(ctx, r); err != nil {
		return nil, err
	}
	// One change at a time, with Envoy the only xDS client.
	if r.Add, err = s.change(ctx, "add", addA, nil); err != nil {
		return nil, err
	}
	if r.Move, err = s.change(ctx, "move", moveA, s.moved); err != nil {
		return nil, err
	}
	if err := s.measureTraffic(ctx, r, addB, moveB); err != nil {
		return nil, err
	}
	return r, nil
}

// newRunState makes the run's directory and picks its ports.
func (e *benchEnv) newRunState(src targetSource, n int) (*runState, error) {
	dir := filepath.Join(e.dir, src.name(), strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := proc.FreePorts(4)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	s := &runState{benchEnv: e, n: n, src: src, runDir: dir, moved: map[int]bool{},
		grpcAddr: addr(0), xdsHTTPAddr: addr(1), edgeAddr: addr(2), adminAddr: addr(3)}
	s.xdsHTTP, s.edgeURL, s.adminURL = "http://"+s.xdsHTTPAddr, "https://"+s.edgeAddr, "http://"+s.adminAddr
	return s, nil
}

// stop stops what the run started, last first.
func (s *runState) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// sampleTargets are the targets that requests go to: the first, the last and a random sample,
// the same for every run with n targets.
func (e *benchEnv) sampleTargets(n int) []int {
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	sample := []int{0, n - 1}
	for _, i := range rng.Perm(n - 2)[:min(e.samples, n-2)] {
		sample = append(sample, i+1)
	}
	return sample
}

// declareTargets declares the n targets in the source (r.Setup) and returns xds's arguments
// for it.
func (s *runState) declareTargets(ctx context.Context, r *result) ([]string, error) {
	urls := make([]string, s.n)
	for i := range urls {
		urls[i] = s.url(i)
	}
	start := time.Now()
	srcArgs, err := s.src.start(ctx, s.runDir, urls)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", s.src.name(), err)
	}
	// Stopped after xds: xds would log the API server's absence.
	s.stops = append(s.stops, s.src.close)
	r.Setup = time.Since(start)
	fmt.Fprintf(os.Stderr, "  %d targets declared (%s source) in %s\n", s.n, s.src.name(), r.Setup.Round(time.Millisecond))
	return srcArgs, nil
}

// startXDS starts xds and measures the time from exec to ready (r.XDSReady).
func (s *runState) startXDS(ctx context.Context, r *result, srcArgs []string) error {
	start := time.Now()
	var err error
	s.xds, err = proc.Start("xds", s.runDir, nil, s.xdsBin, append(srcArgs,
		"--grpc-address", s.grpcAddr, "--http-address", s.xdsHTTPAddr, "--listen-address", s.edgeAddr,
		"--tls-cert-file", filepath.Join(s.dir, "serving.crt"), "--tls-key-file", filepath.Join(s.dir, "serving.key"),
		"--log-format", "text", "--log-level", "info")...)
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() { s.xds.Stop(10 * time.Second) })
	if err := proc.WaitFor(ctx, s.xds, "xds", proc.HTTPReady(s.xdsHTTP+"/readyz")); err != nil {
		return err
	}
	r.XDSReady = time.Since(start)
	fmt.Fprintf(os.Stderr, "  xds ready after %s\n", r.XDSReady.Round(time.Millisecond))
	return nil
}

// startEnvoy starts Envoy and measures the time from exec until its stats show every target
// (r.EnvoyStats) and until every sampled target answered (r.EnvoySampled).
func (s *runState) startEnvoy(ctx context.Context, r *result, sample []int) error {
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "bench", AdminAddress: s.adminAddr, XDSAddress: s.grpcAddr, ExtAuthzAddress: s.authzAddr})
	if err != nil {
		return err
	}
	bootstrapFile := filepath.Join(s.runDir, "envoy.yaml")
	if err := os.WriteFile(bootstrapFile, bootstrap, 0o644); err != nil {
		return err
	}
	start := time.Now()
	s.envoy, err = proc.Start("envoy", s.runDir, nil, s.envoyBin, "-c", bootstrapFile,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "info")
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() { s.envoy.Stop(30 * time.Second) })
	if err := proc.WaitFor(ctx, s.envoy, "Envoy with every target", s.envoyConfigured(s.n)); err != nil {
		return err
	}
	r.EnvoyStats = time.Since(start)
	fmt.Fprintf(os.Stderr, "  Envoy has every cluster and the routes after %s\n", r.EnvoyStats.Round(time.Millisecond))
	if err := s.requestAll(ctx, sample); err != nil {
		return err
	}
	r.EnvoySampled = time.Since(start)
	fmt.Fprintf(os.Stderr, "  Envoy served %d sampled targets after %s\n", len(sample), r.EnvoySampled.Round(time.Millisecond))
	return nil
}

// measureSteady reads xds's and Envoy's usage right after the initial load and, for the steady
// figures, 3s later.
func (s *runState) measureSteady(ctx context.Context, r *result) error {
	var err error
	if r.Initial, err = readUsage(s.xds.Pid()); err != nil {
		return err
	}
	if r.EnvoyInitial, err = readUsage(s.envoy.Pid()); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	steady, err := readUsage(s.xds.Pid())
	if err != nil {
		return err
	}
	r.InitialSteady = steady.RSS
	if r.InitialFDs, err = openFDs(s.xds.Pid()); err != nil {
		return err
	}
	if r.InitialHeap, err = s.heapInUse(ctx); err != nil {
		return err
	}
	if steady, err = readUsage(s.envoy.Pid()); err != nil {
		return err
	}
	r.EnvoySteadyRSS = steady.RSS
	return nil
}

// measureTraffic measures the update sizes as a delta ADS client of our own sees them: the
// whole configuration, then adding target add and moving target move.
func (s *runState) measureTraffic(ctx context.Context, r *result, add, move int) error {
	ads, err := dialADS(s.grpcAddr)
	if err != nil {
		return err
	}
	defer ads.close()
	all, err := ads.settle(ctx, 0, adsTypes, 2*time.Second)
	if err != nil {
		return err
	}
	r.Full = sumTraffic(all)
	if r.AddBytes, err = s.changeTraffic(ctx, ads, add, nil); err != nil {
		return err
	}
	if r.MoveBytes, err = s.changeTraffic(ctx, ads, move, s.moved); err != nil {
		return err
	}
	return nil
}

func targetName(i int) string { return fmt.Sprintf("t%05d", i) }

// envoyConfigured succeeds once Envoy's admin stats show the targets' clusters all active (none
// warming: each has its secrets), the listener active, and every scope loaded: the static one
// and one per target, each with its route configuration (Envoy counts a scope in all_scopes
// once it has its routes).
func (s *runState) envoyConfigured(n int) func(context.Context) error {
	want := map[string]int{
		"cluster_manager.active_clusters":          n + staticClusters,
		"cluster_manager.warming_clusters":         0,
		"listener_manager.total_listeners_active":  1,
		"listener_manager.total_listeners_warming": 0,
	}
	return func(ctx context.Context) error {
		stats, err := s.stats(ctx)
		if err != nil {
			return err
		}
		for name, v := range want {
			got, ok := stats[name]
			if !ok || got != v {
				return fmt.Errorf("%s = %d (present %v), want %d", name, got, ok, v)
			}
		}
		if got := stats["http.edge.scoped_rds.edge.all_scopes"]; got != n+1 {
			return fmt.Errorf("http.edge.scoped_rds.edge.all_scopes = %d, want %d", got, n+1)
		}
		return nil
	}
}

// stats reads the few Envoy stats the bench needs. The filter keeps the answer small: with
// 10,000 clusters Envoy has about a million stats.
func (s *runState) stats(ctx context.Context) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		s.adminURL+`/stats?filter=^(cluster_manager\.|listener_manager\.total_listeners|http\.edge\.scoped_rds\.edge\.)`, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	stats := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if v, err := strconv.Atoi(value); ok && err == nil {
			stats[name] = v
		}
	}
	return stats, nil
}

// request sends one GET through Envoy to target i and checks that its upstream answered: on the
// target's own address, to the edge's client certificate.
func (s *runState) request(ctx context.Context, i int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.edgeURL+"/kubernetes/cluster/"+targetName(i)+"/version", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var rep reply
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &rep) != nil {
		return fmt.Errorf("GET %s: %d %s", req.URL.Path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	want := strings.TrimPrefix(s.url(i), "https://")
	if rep.Local != want || rep.ServerName != targetHost(i) || rep.ClientCN != "keygate-edge" {
		return fmt.Errorf("GET %s: answered on %s as %q to client %q, want on %s as %q to keygate-edge",
			req.URL.Path, rep.Local, rep.ServerName, rep.ClientCN, want, targetHost(i))
	}
	return nil
}

// requestAll requests every target in is (8 at a time), each retried until it succeeds or ctx
// ends.
func (s *runState) requestAll(ctx context.Context, is []int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, i := range is {
		g.Go(func() error { return s.until(ctx, i, 10*time.Millisecond) })
	}
	return g.Wait()
}

// until requests target i every interval until it is served by its upstream.
func (s *runState) until(ctx context.Context, i int, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return proc.WaitFor(ctx, s.envoy, "target "+targetName(i), func(ctx context.Context) error {
		err := s.request(ctx, i)
		if err != nil {
			time.Sleep(interval)
		}
		return err
	})
}

// change adds target i (moved nil) or moves its upstream (moved[i] is set), and measures the
// time until Envoy serves i from its new upstream, and xds's CPU and memory for the change.
func (s *runState) change(ctx context.Context, what string, i int, moved map[int]bool) (change, error) {
	var c change
	if err := resetPeak(s.xds.Pid()); err != nil {
		return c, fmt.Errorf("reset xds's VmHWM: %w", err)
	}
	before, err := readUsage(s.xds.Pid())
	if err != nil {
		return c, err
	}
	start := time.Now()
	if err := s.edit(ctx, i, moved); err != nil {
		return c, err
	}
	if err := s.until(ctx, i, 10*time.Millisecond); err != nil {
		return c, err
	}
	c.Latency = time.Since(start)
	// xds may still be serving other streams or collecting garbage; give it a moment.
	time.Sleep(2 * time.Second)
	after, err := readUsage(s.xds.Pid())
	if err != nil {
		return c, err
	}
	c.XDSCPU, c.XDSPeak, c.XDSRSS = after.CPU-before.CPU, after.HWM, after.RSS
	if published, ok := publishedAfter(s.xds.LogPath, start); ok {
		c.Published = published.Sub(start)
	}
	fmt.Fprintf(os.Stderr, "  %s %s: published by xds after %s, served after %s, xds CPU %s\n", what, targetName(i),
		c.Published.Round(time.Millisecond), c.Latency.Round(time.Millisecond), c.XDSCPU)
	return c, nil
}

// changeTraffic makes a change like change while the ADS client listens, and returns what the
// client received for it: from the change until Envoy serves it and the stream has been quiet
// for 2s.
func (s *runState) changeTraffic(ctx context.Context, ads *adsClient, i int, moved map[int]bool) (traffic, error) {
	from := ads.count()
	if err := s.edit(ctx, i, moved); err != nil {
		return traffic{}, err
	}
	if err := s.until(ctx, i, 10*time.Millisecond); err != nil {
		return traffic{}, err
	}
	rs, err := ads.settle(ctx, from, nil, 2*time.Second)
	if err != nil {
		return traffic{}, err
	}
	return sumTraffic(rs), nil
}

// edit adds target i (moved nil) or moves its upstream to its second address.
func (s *runState) edit(ctx context.Context, i int, moved map[int]bool) error {
	if moved != nil {
		moved[i] = true
	}
	return s.src.set(ctx, i, s.url(i))
}

// heapInUse reads go_memstats_heap_inuse_bytes from xds's /metrics.
func (s *runState) heapInUse(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.xdsHTTP+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("xds /metrics: no go_memstats_heap_inuse_bytes (%v)", sc.Err())
}

// publishedAfter is the time of the first "configuration published" in xds's log at or after
// start. The log's times have millisecond resolution.
func publishedAfter(logPath string, start time.Time) (time.Time, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	start = start.Truncate(time.Millisecond)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="configuration published"`) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && !t.Before(start) {
			return t, true
		}
	}
	return time.Time{}, false
}
