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
// times the one-session step's.
func (r *results) sessionSteps(s settings, progress io.Writer) error {
	for _, n := range s.sessions {
		fmt.Fprintf(progress, "streams: %d concurrent exec sessions\n", n)
		st := r.sessionStep(s, n)
		r.steps = append(r.steps, st)
		switch {
		case st.failures > 0:
			r.stopped = fmt.Sprintf("%d sessions: %d failed (first: %s)", n, st.failures, st.firstError)
		case st.p99 > 10*r.steps[0].p99:
			r.stopped = fmt.Sprintf("%d sessions: echo p99 %s is over 10× the one-session p99 %s", n, st.p99, r.steps[0].p99)
		default:
			continue
		}
		return nil
	}
	return nil
}

// sessionStep opens n sessions side by side, leaves them idle for s.idle, then has every one
// echo s.perSess bytes at once, and closes them.
func (r *results) sessionStep(s settings, n int) stepResult {
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
			sess, setup, err := openSession(ctx, r.env.edge, transportWS)
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
			if rtts[i], err = sess.echoes(s.perSess, nil); err != nil {
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
