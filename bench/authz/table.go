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

// summary is a cell's figures over its rounds: the load of one round (the median or the best by
// requests per second) and each process's CPU per 10,000 requests (the median or the least over
// the rounds, each process on its own).
type summary struct {
	load   loadResult
	per10k map[string]float64
}

// The ways to summarise a cell's rounds (-stat).
const (
	statMedian = "median"
	// statBest is the least disturbed round: the most requests per second, and for each process
	// the least CPU per request. On a shared machine others' work only ever slows a cell down
	// and adds to its CPU (cache misses, preemption), so the best round is the nearest to what
	// the case costs on its own.
	statBest = "best"
)

func summarize(fs []figures, stat string) summary {
	s := slices.Clone(fs)
	slices.SortFunc(s, func(a, b figures) int { return a.load.requests - b.load.requests })
	pick := func(n int) int { return n / 2 }
	if stat == statBest {
		pick = func(n int) int { return n - 1 }
	}
	out := summary{load: s[pick(len(s))].load, per10k: map[string]float64{}}
	for process := range fs[0].cpu {
		var per []float64
		for _, f := range fs {
			per = append(per, per10kOf(f, process))
		}
		slices.Sort(per)
		if stat == statBest {
			out.per10k[process] = per[0]
		} else {
			out.per10k[process] = per[len(per)/2]
		}
	}
	return out
}

// per10kOf is a process's CPU milliseconds per 10,000 requests in one round.
func per10kOf(f figures, process string) float64 {
	if f.load.requests == 0 {
		return 0
	}
	return float64(f.cpu[process]) / float64(time.Millisecond) * 10000 / float64(f.load.requests)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func printTables(w io.Writer, s settings, env *benchEnv, results map[cell][]figures) {
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	fmt.Fprintf(w, "One run, %s, %d CPUs, Envoy --concurrency 1, commit %s; %s per cell after a tenth more of warm-up, %s of %d interleaved rounds. Closed-loop load (see bench/README.md).\n\n",
		env.started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), strings.TrimSpace(string(commit)), s.duration, s.stat, s.rounds)
	if s.profiles != "" && s.duration >= time.Second {
		fmt.Fprintf(w, "CPU profiles of extauthz and the do-nothing server, one per cell and round: %s (`go tool pprof -top %s/extauthz_allowed_*`).\n\n", s.profiles, s.profiles)
	}
	fmt.Fprintln(w, "| TLS | conns | key | case | req/s | × no auth | p50 µs | p99 µs | p99.9 µs | Envoy CPU ms/10k | × no auth | authz CPU ms/10k | Redis | upstream | × do-nothing (req/s, authz CPU) |")
	fmt.Fprintln(w, "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, tlsOn := range s.tls {
		for _, conns := range s.conns {
			for _, k := range keyKinds {
				for _, c := range env.cases {
					if fs, ok := results[cell{c.name, k, conns, tlsOn}]; ok && c.variant == nil {
						printRow(w, s.stat, c.name, k, conns, tlsOn, summarize(fs, s.stat), results)
					}
				}
			}
		}
	}
	printVariants(w, s, env, results)
}

// printVariants compares each variant with the case it changes, key by key (the allowed key
// only, but for -baseline's every key), side by side.
func printVariants(w io.Writer, s settings, env *benchEnv, results map[cell][]figures) {
	if len(s.variants) == 0 {
		return
	}
	fmt.Fprintln(w, "\nVariants of the ext_authz call, each beside the case it changes (same rounds):")
	fmt.Fprintln(w, "\n| TLS | conns | key | calls | variant | req/s | × without | × no auth | p99 µs | Envoy CPU ms/10k | × without | authz CPU ms/10k | × without |")
	fmt.Fprintln(w, "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, tlsOn := range s.tls {
		for _, conns := range s.conns {
			for _, c := range env.cases {
				if c.variant == nil {
					continue
				}
				for _, k := range c.keys {
					printVariantRow(w, s, c, k, conns, tlsOn, results)
				}
			}
		}
	}
}

// printVariantRow is variant case c's row for key k, beside the case it changes.
func printVariantRow(w io.Writer, s settings, c benchCase, k string, conns int, tlsOn bool, results map[cell][]figures) {
	ratio := func(x, y float64) string {
		if y == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	base, baseProc := caseExtAuthz, "extauthz"
	if c.variant.authz == "null" {
		base, baseProc = caseNull, "null"
	}
	vs, ok := results[cell{c.name, k, conns, tlsOn}]
	bs, ok2 := results[cell{base, k, conns, tlsOn}]
	if !ok || !ok2 {
		return
	}
	v, b := summarize(vs, s.stat), summarize(bs, s.stat)
	vsNoAuth := "–"
	if noAuth, ok := results[cell{caseNoAuth, keyAllowed, conns, tlsOn}]; ok {
		vsNoAuth = ratio(v.load.perSecond(), summarize(noAuth, s.stat).load.perSecond())
	}
	fmt.Fprintf(w, "| %t | %d | %s | %s | %s | %.0f | %s | %s | %.0f | %.0f | %s | %.0f | %s |\n", tlsOn, conns, k, baseProc, c.variant.label,
		v.load.perSecond(), ratio(v.load.perSecond(), b.load.perSecond()), vsNoAuth, us(v.load.percentile(0.99)),
		v.per10k["envoy"], ratio(v.per10k["envoy"], b.per10k["envoy"]),
		v.per10k[c.authz], ratio(v.per10k[c.authz], b.per10k[baseProc]))
}

func printRow(w io.Writer, stat, c, k string, conns int, tlsOn bool, f summary, results map[cell][]figures) {
	ratio := func(x, y float64) string {
		if y == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	per10k := func(x summary, process string) float64 { return x.per10k[process] }
	vsBase, envoyVsBase := "–", "–"
	if base, ok := results[cell{caseNoAuth, keyAllowed, conns, tlsOn}]; ok {
		b := summarize(base, stat)
		vsBase, envoyVsBase = ratio(f.load.perSecond(), b.load.perSecond()), ratio(per10k(f, "envoy"), per10k(b, "envoy"))
	}
	authz, vsNull := "–", "–"
	switch c {
	case caseNull:
		authz = fmt.Sprintf("%.0f", per10k(f, "null"))
	case caseExtAuthz:
		authz = fmt.Sprintf("%.0f", per10k(f, "extauthz"))
		if n, ok := results[cell{caseNull, k, conns, tlsOn}]; ok {
			nm := summarize(n, stat)
			vsNull = ratio(f.load.perSecond(), nm.load.perSecond()) + ", " + ratio(per10k(f, "extauthz"), per10k(nm, "null"))
		}
	}
	fmt.Fprintf(w, "| %t | %d | %s | %s | %.0f | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %.0f | %.0f | %s |\n",
		tlsOn, conns, k, c, f.load.perSecond(), vsBase, us(f.load.percentile(0.5)), us(f.load.percentile(0.99)), us(f.load.percentile(0.999)),
		per10k(f, "envoy"), envoyVsBase, authz, per10k(f, "redis"), per10k(f, "upstream"), vsNull)
}
