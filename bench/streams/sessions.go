package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stepResult is one step of concurrent exec sessions through the edge.
type stepResult struct {
	sessions   int
	failures   int
	firstError string
	setupP99   time.Duration
	p50, p99   time.Duration
	envoyHeap  int64 // Envoy's server.memory_allocated with every session open and idle
}

// sessionSteps opens more and more concurrent exec sessions through the edge (WebSocket, as
// kubectl does by default), and stops at the first step with a failure or an echo p99 above ten
// times the one-session step's. Each step runs the same sessions against the API server without
// the edge too (the order alternating), because on a shared two-core machine every echo's CPU
// (client, API server, stand-in) queues behind the others': only the side-by-side ratio tells
// the edge's share. Each step runs s.stepRounds times and shows its median round.
func (r *results) sessionSteps(s settings, progress io.Writer) error {
	for i, n := range s.sessions {
		fmt.Fprintf(progress, "streams: %d concurrent exec sessions\n", n)
		var edge, direct []stepResult
		for round := range s.stepRounds {
			if (i+round)%2 == 0 {
				edge, direct = append(edge, r.sessionStep(s, r.env.edge, n)), append(direct, r.sessionStep(s, r.env.direct, n))
			} else {
				direct, edge = append(direct, r.sessionStep(s, r.env.direct, n)), append(edge, r.sessionStep(s, r.env.edge, n))
			}
		}
		st := stepPair{medianStep(edge), medianStep(direct)}
		r.steps = append(r.steps, st)
		base, against := r.steps[0].edge.p99, "the one-session p99"
		if s.stopAgainst == stopAgainstAPIServer {
			base, against = st.direct.p99, "the API server's p99 at this step"
		}
		switch {
		case st.edge.failures > 0:
			r.stopped = fmt.Sprintf("%d sessions: %d failed through the edge (first: %s)", n, st.edge.failures, st.edge.firstError)
		case st.edge.p99 > 10*base:
			r.stopped = fmt.Sprintf("%d sessions: echo p99 through the edge %s is over 10× %s, %s", n, st.edge.p99.Round(time.Microsecond), against, base.Round(time.Microsecond))
		default:
			continue
		}
		return nil
	}
	return nil
}

// medianStep is the round with the median echo p99, with every round's failures.
func medianStep(rs []stepResult) stepResult {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b stepResult) int { return int(a.p99 - b.p99) })
	m := sorted[len(sorted)/2]
	m.failures, m.firstError = 0, ""
	for _, r := range rs {
		m.failures += r.failures
		if m.firstError == "" {
			m.firstError = r.firstError
		}
	}
	return m
}

// The -stop-against rules. Both stop at the first failure. One-session stops when the edge's
// echo p99 passes ten times the one-session step's; but on two cores ten sessions echoing at once
// already queue that much behind each other's CPU, edge or not, so api-server compares the
// edge's p99 with the API server's at the same step instead: what the edge itself adds.
const (
	stopAgainstOneSession = "one-session"
	stopAgainstAPIServer  = "api-server"
)

// stepPair is one step through the edge and without it.
type stepPair struct{ edge, direct stepResult }

// echoesPerSession gives every step at least 1,000 round trips, so that its p99 is not one
// unlucky echo; each session still echoes one byte at a time.
func echoesPerSession(s settings, n int) int { return max(s.perSess, (1000+n-1)/n) }

// sessionStep opens n sessions through t side by side, leaves them idle for s.idle, then has
// every one echo its bytes at once, and closes them.
func (r *results) sessionStep(s settings, t target, n int) stepResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st := stepResult{sessions: n}
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if st.failures++; st.firstError == "" {
			st.firstError = err.Error()
		}
	}
	sessions := make([]*session, n)
	setups := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sess, setup, err := openSession(ctx, t, transportWS)
			if err != nil {
				fail(err)
				return
			}
			sessions[i], setups[i] = sess, setup
		})
	}
	wg.Wait()
	st.setupP99 = percentile(setups, 0.99)
	time.Sleep(s.idle)
	st.envoyHeap = envoyStat(r.env.platform.EnvoyAdminURL, "server.memory_allocated")
	rtts := make([][]time.Duration, n)
	for i, sess := range sessions {
		if sess == nil {
			continue
		}
		wg.Go(func() {
			var err error
			if rtts[i], err = sess.echoes(echoesPerSession(s, n), nil); err != nil {
				fail(fmt.Errorf("echo after idle: %w", err))
			}
			if err := sess.close(); err != nil {
				fail(fmt.Errorf("close: %w", err))
			}
		})
	}
	wg.Wait()
	all := slices.Concat(rtts...)
	st.p50, st.p99 = percentile(all, 0.5), percentile(all, 0.99)
	return st
}

// envoyStat reads one gauge from Envoy's admin endpoint; -1 if it cannot.
func envoyStat(adminURL, name string) int64 {
	resp, err := http.Get(adminURL + "/stats?filter=^" + name + "$")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_, v, ok := strings.Cut(strings.TrimSpace(string(body)), ": ")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		return -1
	}
	return n
}

// percentile is the q-quantile of ds (nearest rank); 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	var s []time.Duration
	for _, d := range ds {
		if d > 0 {
			s = append(s, d)
		}
	}
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
