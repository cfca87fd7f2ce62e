package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/proc"
)

// runState is one xds and one Envoy with n targets.
type runState struct {
	*benchEnv
	n      int
	src    targetSource
	runDir string       // this run's logs, bootstrap and source state
	moved  map[int]bool // targets whose upstream moved
	// Each address as dialled (…Addr) and as a URL.
	grpcAddr, xdsHTTPAddr, edgeAddr, adminAddr, pprofAddr string
	xdsHTTP, edgeURL, adminURL                            string
	xds, envoy                                            *proc.Process
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

	if err := e.upstream.issue(addB + 1); err != nil {
		return nil, err
	}
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
	if err := s.measureRest(ctx, r); err != nil {
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
	ports, err := proc.FreePorts(5)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	s := &runState{benchEnv: e, n: n, src: src, runDir: dir, moved: map[int]bool{},
		grpcAddr: addr(0), xdsHTTPAddr: addr(1), edgeAddr: addr(2), adminAddr: addr(3), pprofAddr: addr(4)}
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
		// Everything runs on loopback, and the bench measures xds and Envoy, not TLS handshakes
		// (one per Envoy connection); see bench/README.md.
		"--grpc-insecure-loopback",
		// The heap profile after the initial load (heapProfile) says where the memory goes.
		"--pprof-address", s.pprofAddr,
		"--log-format", "text", "--log-level", "info")...)
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() { s.xds.Stop(10 * time.Second) })
	s.startCPUProfile(ctx)
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
	bootstrap, err := envoy.Render(envoy.Params{NodeID: "bench", AdminAddress: s.adminAddr, XDSAddress: s.grpcAddr, ExtAuthzAddress: s.authzAddr, InsecurePlaintext: true})
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
	if r.InitialFDs, err = procstat.OpenFDs(s.xds.Pid()); err != nil {
		return err
	}
	if r.InitialHeap, err = s.heapInUse(ctx); err != nil {
		return err
	}
	if r.InitialLive, err = s.heapProfile(ctx); err != nil {
		return err
	}
	if steady, err = readUsage(s.envoy.Pid()); err != nil {
		return err
	}
	r.EnvoySteadyRSS = steady.RSS
	return nil
}

// restWindow is how long xds is watched at rest with the Kubernetes source: the default
// --discovery-poll-interval, so that every connected cluster is polled about once within it.
const restWindow = time.Minute

// measureRest measures xds at rest over restWindow, with the Kubernetes source: its CPU, and
// how many connected clusters it polled (each poll a TLS connection to the bench's upstream).
func (s *runState) measureRest(ctx context.Context, r *result) error {
	if s.src.name() != "kubernetes" {
		return nil
	}
	before, err := readUsage(s.xds.Pid())
	if err != nil {
		return err
	}
	polls, _, err := s.xdsMetric(ctx, "keygate_xds_kube_discovery_polls_total")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  xds at rest for %s\n", restWindow)
	time.Sleep(restWindow)
	after, err := readUsage(s.xds.Pid())
	if err != nil {
		return err
	}
	pollsAfter, _, err := s.xdsMetric(ctx, "keygate_xds_kube_discovery_polls_total")
	if err != nil {
		return err
	}
	r.RestWindow, r.RestCPU, r.RestPolls = restWindow, after.CPU-before.CPU, pollsAfter-polls
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
