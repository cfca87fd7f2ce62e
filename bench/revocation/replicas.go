package main

import (
	"bufio"
	"context"
	"fmt"
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

// applied sums every replica's lagCounts.
func (p *pool) applied(ctx context.Context) (lagCounts, error) {
	var sum lagCounts
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
	// many changes it applied within 1 ms and 5 ms of Redis appending them, and in all.
	applied lagCounts
}

// lagCounts are counts of changes applied, by how late.
type lagCounts struct{ within1ms, within5ms, all int64 }

func (a lagCounts) minus(b lagCounts) lagCounts {
	return lagCounts{a.within1ms - b.within1ms, a.within5ms - b.within5ms, a.all - b.all}
}

func (a lagCounts) plus(b lagCounts) lagCounts {
	return lagCounts{a.within1ms + b.within1ms, a.within5ms + b.within5ms, a.all + b.all}
}

const lagMetric = `keygate_extauthz_revocation_lag_seconds_`

func (p *pool) scrape(ctx context.Context, r *replica) (cacheState, error) {
	var s cacheState
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
		case name == lagMetric+`bucket{stream="access_keys",le="0.001"}`:
			s.applied.within1ms = int64(v)
		case name == lagMetric+`bucket{stream="access_keys",le="0.005"}`:
			s.applied.within5ms = int64(v)
		case name == lagMetric+`count{stream="access_keys"}`:
			s.applied.all = int64(v)
		}
	}
	return s, sc.Err()
}
