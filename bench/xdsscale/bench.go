package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
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
	cpuProfile            time.Duration // of xds from its start; 0 takes none

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
	XDSReady      time.Duration // xds exec → /readyz 200 (targets loaded, translated, published)
	EnvoyStats    time.Duration // Envoy exec → admin stats show every cluster active, the listener and the routes
	EnvoySampled  time.Duration // Envoy exec → every sampled target answered from its upstream
	Initial       usage         // xds after the initial load and push (CPU total, HWM since start)
	InitialSteady int64         // xds RSS 3s after Envoy served, bytes
	InitialHeap   int64         // xds Go heap in use then (go_memstats_heap_inuse_bytes): live data, unlike RSS
	InitialLive   int64         // xds heap allocated right after a forced garbage collection then: the live data alone
	InitialFDs    int           // xds open file descriptors then (sockets: Envoy, API servers, connected clusters)
	// At rest after the initial load, over RestWindow: xds's CPU, and the connected clusters
	// polled for virtual clusters meanwhile (the Kubernetes source).
	RestWindow, RestCPU time.Duration
	RestPolls           float64
	EnvoyInitial        usage // Envoy after the initial load
	EnvoySteadyRSS      int64

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
	if err := procstat.ResetPeak(s.xds.Pid()); err != nil {
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
	v, found, err := s.xdsMetric(ctx, "go_memstats_heap_inuse_bytes")
	if err == nil && !found {
		err = errors.New("xds /metrics: no go_memstats_heap_inuse_bytes")
	}
	return int64(v), err
}

// xdsMetric is the sum of the series of the metric name on xds's /metrics, and whether there
// is any.
func (s *runState) xdsMetric(ctx context.Context, name string) (sum float64, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.xdsHTTP+"/metrics", nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, false, err
		}
		sum, found = sum+f, true
	}
	return sum, found, sc.Err()
}

// heapProfile saves xds's heap profile (after a garbage collection) as xds-heap.pb.gz in the
// run's directory, for go tool pprof -sample_index=inuse_space (kept with -keep), and returns
// the heap allocated right after that collection: the live data alone.
func (s *runState) heapProfile(ctx context.Context) (live int64, err error) {
	get := func(query string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.pprofAddr+"/debug/pprof/heap?"+query, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("xds heap profile: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("xds heap profile: HTTP %d", resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	// The text form ends with runtime.MemStats, read right after the collection gc=1 asks for.
	text, err := get("gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	i := strings.Index(string(text), "\n# HeapAlloc = ")
	if i < 0 {
		return 0, errors.New("xds heap profile: no HeapAlloc")
	}
	field, _, _ := strings.Cut(string(text[i+len("\n# HeapAlloc = "):]), "\n")
	if live, err = strconv.ParseInt(strings.TrimSpace(field), 10, 64); err != nil {
		return 0, fmt.Errorf("xds heap profile: HeapAlloc: %w", err)
	}
	profile, err := get("")
	if err != nil {
		return 0, err
	}
	path := filepath.Join(s.runDir, "xds-heap.pb.gz")
	if err := os.WriteFile(path, profile, 0o644); err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "  xds heap profile: %s\n", path)
	return live, nil
}

// startCPUProfile takes a CPU profile of xds for s.cpuProfile from now (its start), in the
// background, and saves it as xds-cpu.pb.gz in the run's directory. A run that ends first
// leaves none.
func (s *runState) startCPUProfile(ctx context.Context) {
	if s.cpuProfile <= 0 {
		return
	}
	go func() {
		if err := proc.WaitFor(ctx, s.xds, "xds pprof", proc.TCPReady(s.pprofAddr)); err != nil {
			return
		}
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprofAddr, int(s.cpuProfile.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "  xds CPU profile: %v\n", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "  xds CPU profile: HTTP %d %v\n", resp.StatusCode, err)
			return
		}
		path := filepath.Join(s.runDir, "xds-cpu.pb.gz")
		if err := os.WriteFile(path, data, 0o644); err == nil {
			fmt.Fprintf(os.Stderr, "  xds CPU profile (first %s): %s\n", s.cpuProfile, path)
		}
	}()
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
