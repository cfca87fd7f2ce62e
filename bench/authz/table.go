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

// median is the round with the median requests per second.
func median(fs []figures) figures {
	s := slices.Clone(fs)
	slices.SortFunc(s, func(a, b figures) int { return a.load.requests - b.load.requests })
	return s[len(s)/2]
}

// per10k is a process's CPU milliseconds per 10,000 requests in f.
func per10k(f figures, process string) float64 {
	if f.load.requests == 0 {
		return 0
	}
	return float64(f.cpu[process]) / float64(time.Millisecond) * 10000 / float64(f.load.requests)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func printTables(w io.Writer, s settings, env *benchEnv, results map[cell][]figures) {
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	fmt.Fprintf(w, "One run, %s, %d CPUs, Envoy --concurrency 1, commit %s; %s per cell after a tenth more of warm-up, median of %d interleaved rounds. Closed-loop load (see bench/README.md).\n\n",
		env.started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), strings.TrimSpace(string(commit)), s.duration, s.rounds)
	fmt.Fprintln(w, "| TLS | conns | key | case | req/s | × no auth | p50 µs | p99 µs | p99.9 µs | Envoy CPU ms/10k | × no auth | authz CPU ms/10k | Redis | upstream | × do-nothing (req/s, authz CPU) |")
	fmt.Fprintln(w, "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, tlsOn := range s.tls {
		for _, conns := range s.conns {
			base, hasBase := results[cell{caseNoAuth, keyAllowed, conns, tlsOn}]
			for _, k := range keyKinds {
				for _, c := range cases {
					fs, ok := results[cell{c.name, k, conns, tlsOn}]
					if !ok {
						continue
					}
					printRow(w, c.name, k, conns, tlsOn, median(fs), base, hasBase, results)
				}
			}
		}
	}
}

func printRow(w io.Writer, c, k string, conns int, tlsOn bool, f figures, base []figures, hasBase bool, results map[cell][]figures) {
	ratio := func(x, y float64) string {
		if y == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	vsBase, envoyVsBase := "–", "–"
	if hasBase {
		b := median(base)
		vsBase, envoyVsBase = ratio(f.load.perSecond(), b.load.perSecond()), ratio(per10k(f, "envoy"), per10k(b, "envoy"))
	}
	authz, vsNull := "–", "–"
	switch c {
	case caseNull:
		authz = fmt.Sprintf("%.0f", per10k(f, "null"))
	case caseExtAuthz:
		authz = fmt.Sprintf("%.0f", per10k(f, "extauthz"))
		if n, ok := results[cell{caseNull, k, conns, tlsOn}]; ok {
			nm := median(n)
			vsNull = ratio(f.load.perSecond(), nm.load.perSecond()) + ", " + ratio(per10k(f, "extauthz"), per10k(nm, "null"))
		}
	}
	fmt.Fprintf(w, "| %t | %d | %s | %s | %.0f | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %.0f | %.0f | %s |\n",
		tlsOn, conns, k, c, f.load.perSecond(), vsBase, us(f.load.percentile(0.5)), us(f.load.percentile(0.99)), us(f.load.percentile(0.999)),
		per10k(f, "envoy"), envoyVsBase, authz, per10k(f, "redis"), per10k(f, "upstream"), vsNull)
}
