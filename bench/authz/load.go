package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The load generator is closed-loop: each connection sends its next request as soon as the
// previous answer arrived (as wrk does). Its percentiles are therefore those of the requests
// sent at full load, not of an open-loop arrival rate: a stall delays the requests that would
// have been sent meanwhile, which this does not count (coordinated omission). The bench
// compares cases at their own saturation, side by side, where that bias is the same for all;
// it does not claim latencies at a given offered rate.

// loadResult is one cell's measurement.
type loadResult struct {
	requests  int
	elapsed   time.Duration
	latencies []time.Duration // sorted
	// checked counts every answer checked, warm-up included: at least one per connection,
	// however long the first takes.
	checked int
}

func (r loadResult) perSecond() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.latencies)))
	return r.latencies[min(i, len(r.latencies)-1)]
}

// target is where and how a cell sends its requests.
type target struct {
	addr   string
	tls    *tls.Config // nil: plaintext
	path   string
	key    string // bearer key; "" sends none
	status int    // the only status every answer may have
	// expect is what the upstream must receive if the request reaches it (expectKey,
	// expectIdentity), sent in expectHeader; it answers 500 otherwise.
	expect string
}

// load runs conns connections against t for d (after a warm-up of d/10 that is not counted),
// and fails on the first answer whose status is not t.status or whose body is not the
// upstream's (for 200).
func load(t target, conns int, d time.Duration) (loadResult, error) {
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: keygate-bench\r\n%s: %s\r\n", t.path, expectHeader, t.expect)
	if t.key != "" {
		req += "Authorization: Bearer " + t.key + "\r\n"
	}
	raw := []byte(req + "\r\n")
	var (
		mu      sync.Mutex
		all     []time.Duration
		total   int
		checked int
		errs    []error
		wg      sync.WaitGroup
		start   = time.Now()
		warm    = start.Add(d / 10)
		finish  = warm.Add(d)
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, n, c, err := connLoop(t, raw, warm, finish)
			mu.Lock()
			defer mu.Unlock()
			all, total, checked = append(all, lat...), total+n, checked+c
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return loadResult{}, errs[0]
	}
	slices.Sort(all)
	return loadResult{requests: total, elapsed: d, latencies: all, checked: checked}, nil
}

// connLoop sends requests on one connection until finish, and past it until one answer was
// checked; it returns the latencies of the requests sent between warm and finish, their number,
// and the number of answers checked.
func connLoop(t target, raw []byte, warm, finish time.Time) ([]time.Duration, int, int, error) {
	conn, err := dial(t)
	if err != nil {
		return nil, 0, 0, err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 16<<10)
	lat := make([]time.Duration, 0, 1<<16)
	n, checked := 0, 0
	for {
		sent := time.Now()
		if !sent.Before(finish) && checked > 0 {
			return lat, n, checked, nil
		}
		if _, err := conn.Write(raw); err != nil {
			return lat, n, checked, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return lat, n, checked, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return lat, n, checked, err
		}
		if resp.StatusCode != t.status || (t.status == http.StatusOK && string(body) != string(upstreamBody)) {
			return lat, n, checked, fmt.Errorf("GET %s: status %d (want %d), body %.200q", t.path, resp.StatusCode, t.status, body)
		}
		checked++
		if sent.After(warm) && sent.Before(finish) {
			lat = append(lat, time.Since(sent))
			n++
		}
	}
}

func dial(t target) (net.Conn, error) {
	c, err := net.Dial("tcp", t.addr)
	if err != nil || t.tls == nil {
		return c, err
	}
	tc := tls.Client(c, t.tls)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}
