package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate-dev/keygate/internal/proc"
)

// replica is one running extauthz process.
type replica struct {
	name     string
	p        *proc.Process
	grpcAddr string
	metrics  string // its /metrics URL
	// conn is the revoker's own connection, for warming and polling: apart from the load's, so
	// that a poll does not queue behind load Checks in the client.
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
	// events is how many access-key changes the bench made since this replica followed the
	// stream: its invalidation count once it has applied them all.
	events int64
}

// pool holds the running replicas; a configuration of n replicas runs exactly n.
type pool struct {
	bin, logs, redisAddr string
	gomaxprocs           int
	started              int
	reps                 []*replica
	http                 *http.Client
}

// resize stops replicas beyond n and starts new ones up to n, each following the key store's
// events (its cache live) before resize returns.
func (p *pool) resize(ctx context.Context, n int) error {
	for len(p.reps) > n {
		p.reps[len(p.reps)-1].stop()
		p.reps = p.reps[:len(p.reps)-1]
	}
	for len(p.reps) < n {
		r, err := p.start(ctx)
		if err != nil {
			return err
		}
		p.reps = append(p.reps, r)
	}
	return nil
}

func (p *pool) start(ctx context.Context) (*replica, error) {
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	p.started++
	r := &replica{name: fmt.Sprintf("extauthz-%d", p.started), grpcAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1])}
	var env []string
	if p.gomaxprocs > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(p.gomaxprocs)}
	}
	r.p, err = proc.Start(r.name, p.logs, env, p.bin, "--grpc-address", r.grpcAddr, "--grpc-insecure-loopback",
		"--http-address", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--redis-address", p.redisAddr, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = proc.WaitFor(wctx, r.p, r.name, proc.HTTPReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])))
	if err == nil {
		// Live: it follows the events from the store's current version, so every change the
		// bench makes from now on reaches it, and it counts them.
		err = proc.WaitFor(wctx, r.p, r.name+"'s key cache", func(ctx context.Context) error {
			m, err := p.scrape(ctx, r)
			if err == nil && !m.live {
				err = fmt.Errorf("key cache not live")
			}
			return err
		})
	}
	if err == nil {
		r.conn, err = grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if err != nil {
		r.stop()
		return nil, err
	}
	r.client = authv3.NewAuthorizationClient(r.conn)
	return r, nil
}

func (r *replica) stop() {
	if r.conn != nil {
		r.conn.Close()
	}
	r.p.Stop(5 * time.Second)
}

// applied sums every replica's lag histogram.
func (p *pool) applied(ctx context.Context) (hist, error) {
	sum := hist{}
	for _, r := range p.reps {
		m, err := p.scrape(ctx, r)
		if err != nil {
			return sum, err
		}
		sum = sum.plus(m.applied)
	}
	return sum, nil
}

func (p *pool) stop() {
	for _, r := range p.reps {
		r.stop()
	}
	p.reps = nil
}

// cacheState is what a replica's /metrics says about its key cache.
type cacheState struct {
	invalidations int64 // access-key events applied
	restarts      int64 // times following the stream broke (any reason)
	live          bool
	// applied is extauthz's own keygate_extauthz_revocation_lag_seconds for access keys: how
	// late it applied the changes, by Redis's clock; lagSum is its sum, in seconds. Between two
	// states with one change between them, the sums' difference is that change's lag, exactly.
	applied hist
	lagSum  float64
}

// lagSince is how late the replica applied the one change it applied since before, exactly,
// from the histogram's sum; an error if it applied another number of changes.
func (s cacheState) lagSince(before cacheState) (time.Duration, error) {
	if n := s.applied.all() - before.applied.all(); n != 1 {
		return 0, fmt.Errorf("%d changes observed in keygate_extauthz_revocation_lag_seconds, want the one revocation", n)
	}
	return time.Duration((s.lagSum - before.lagSum) * float64(time.Second)), nil
}

// hist is a Prometheus histogram: the cumulative count of each bucket, by its upper bound in
// seconds (+Inf: every observation).
type hist map[float64]int64

func (h hist) minus(o hist) hist {
	out := hist{}
	for le, n := range h {
		out[le] = n - o[le]
	}
	return out
}

func (h hist) plus(o hist) hist {
	out := hist{}
	for le, n := range h {
		out[le] = n + o[le]
	}
	for le, n := range o {
		if _, ok := h[le]; !ok {
			out[le] = n
		}
	}
	return out
}

// all is the number of observations.
func (h hist) all() int64 { return h[math.Inf(1)] }

const lagMetric = `keygate_extauthz_revocation_lag_seconds_`

func (p *pool) scrape(ctx context.Context, r *replica) (cacheState, error) {
	s := cacheState{applied: hist{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metrics, nil)
	if err != nil {
		return s, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s: %s", r.metrics, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		v, _ := strconv.ParseFloat(value, 64)
		switch {
		case name == "keygate_extauthz_keycache_invalidations_total":
			s.invalidations = int64(v)
		case strings.HasPrefix(name, "keygate_extauthz_keycache_stream_restarts_total{"):
			s.restarts += int64(v)
		case name == "keygate_extauthz_keycache_live":
			s.live = v == 1
		case name == lagMetric+`sum{stream="access_keys"}`:
			s.lagSum = v
		case strings.HasPrefix(name, lagMetric+`bucket{stream="access_keys",le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(name, lagMetric+`bucket{stream="access_keys",le="`), `"}`), 64)
			if err != nil {
				return s, fmt.Errorf("%s: %q: %w", r.metrics, name, err)
			}
			s.applied[le] = int64(v)
		}
	}
	return s, sc.Err()
}
