package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

func printTables(w io.Writer, s settings, r *results) {
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	load, _ := exec.Command("uptime").Output()
	fmt.Fprintf(w, "One run, %s, %d CPUs, Envoy --concurrency 2, commit %s; %d interleaved rounds; `uptime` at the end: %s\n\n",
		r.env.started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), strings.TrimSpace(string(commit)), s.rounds, strings.TrimSpace(string(load)))
	printForward(w, s, r)
	printExec(w, s, r)
	printSteps(w, s, r)
}

func printForward(w io.Writer, s settings, r *results) {
	fmt.Fprintf(w, "Port-forward, %d MiB each way per transfer (MB/s = 10⁶ bytes sent, and echoed back, per second; median round, [min–max]):\n\n", s.size>>20)
	fmt.Fprintln(w, "| path | transport | MB/s | × direct | × API server, same transport |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: |")
	echo := medianF(r.mbps[cell{pathEcho, "TCP"}])
	for _, c := range sortedCells(r.mbps) {
		v := r.mbps[c]
		m := medianF(v)
		vsAPI := "—"
		if c.path == r.env.edge.name {
			vsAPI = fmt.Sprintf("%.2f", m/medianF(r.mbps[cell{r.env.direct.name, c.transport}]))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f [%.0f–%.0f] | %.2f | %s |\n", c.path, c.transport, m, slices.Min(v), slices.Max(v), m/echo, vsAPI)
	}
	fmt.Fprintln(w)
}

func printExec(w io.Writer, s settings, r *results) {
	fmt.Fprintf(w, "Exec `cat`, 1-byte echo round trip (%d echoes per cell and round, all rounds pooled), and session setup (start to first echo, median):\n\n", s.echoes)
	fmt.Fprintln(w, "| path | transport | echo p50 µs | echo p99 µs | p50 × API server | p99 × API server | setup ms |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range sortedCells(r.rtt) {
		p50, p99 := percentile(r.rtt[c], 0.5), percentile(r.rtt[c], 0.99)
		base := r.rtt[cell{r.env.direct.name, c.transport}]
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.1f |\n", c.path, c.transport, us(p50), us(p99),
			us(p50)/us(percentile(base, 0.5)), us(p99)/us(percentile(base, 0.99)), ms(percentile(r.setup[c], 0.5)))
	}
	fmt.Fprintln(w)
}

func printSteps(w io.Writer, s settings, r *results) {
	fmt.Fprintf(w, "Concurrent exec sessions (WebSocket): open all, idle %s, then all echo at once, one byte at a time, max(%d, 1000/sessions) bytes each; through the edge and, alternating, to the API server without it; median of %d rounds (by p99), failures of all:\n\n", s.idle, s.perSess, s.stepRounds)
	fmt.Fprintln(w, "| sessions | failures (edge, API server) | edge echo p50 µs | edge echo p99 µs | p99 × 1 session | API server echo p99 µs | edge p99 × API server | edge setup p99 ms | Envoy heap MiB (idle) |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, st := range r.steps {
		e, d := st.edge, st.direct
		fmt.Fprintf(w, "| %d | %d, %d | %.0f | %.0f | %.1f | %.0f | %.2f | %.0f | %.1f |\n", e.sessions, e.failures, d.failures, us(e.p50), us(e.p99),
			us(e.p99)/us(r.steps[0].edge.p99), us(d.p99), us(e.p99)/us(d.p99), ms(e.setupP99), float64(e.envoyHeap)/(1<<20))
	}
	if r.stopped != "" {
		fmt.Fprintf(w, "\nStopped at %s.\n", r.stopped)
	}
}

// sortedCells orders cells as the tables show them: direct first, then the API server, then
// the edge; WebSocket before SPDY.
func sortedCells[V any](m map[cell]V) []cell {
	rank := map[string]int{pathEcho: 0, "API server, no edge": 1, "edge": 2, transportWS: 0, transportSPDY: 1}
	var cs []cell
	for c := range m {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b cell) int {
		return rank[a.path]*10 + rank[a.transport] - rank[b.path]*10 - rank[b.transport]
	})
	return cs
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
