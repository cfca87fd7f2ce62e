package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
)

// percentile is the p-quantile of ds (nearest rank; ds need not be sorted).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(p*float64(len(s))), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func msNum(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// alls is each sample's time until every replica refused.
func alls(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.all()
	}
	return out
}

// lags is every replica's lag of every sample.
func lags(ss []sample) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, s.lags...)
	}
	return out
}

// lows is the lower bound of alls: the latest last-allowed poll of each sample.
func lows(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = maxOf(s.lows)
	}
	return out
}

func rtts(ss []sample) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, s.rtts...)
	}
	return out
}

func calls(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.call
	}
	return out
}

func byAction(ss []sample, disable bool) []sample {
	var out []sample
	for _, s := range ss {
		if s.disable == disable {
			out = append(out, s)
		}
	}
	return out
}

// triple is "p50 / p99 / max" in milliseconds.
func triple(ds []time.Duration) string {
	return fmt.Sprintf("%s / %s / %s", msNum(percentile(ds, 0.5)), msNum(percentile(ds, 0.99)), msNum(maxOf(ds)))
}

func printTables(w io.Writer, s settings, r *results) {
	procs := "Go's default"
	if s.gomaxprocs > 0 {
		procs = fmt.Sprint(s.gomaxprocs)
	}
	fmt.Fprintf(w, "One run, %s, %d CPUs, extauthz built from commit %s; GOMAXPROCS %s per replica; %d Checks in flight at most per loaded replica over %d allowed keys; %d revocations per configuration (delete and disable alternating) in %d interleaved rounds.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), r.commit, procs, s.conns, s.loadKeys, s.revocations, s.rounds)
	printRevocations(w, r)
	printApplied(w, r)
	printLoad(w, r)
}

func printRevocations(w io.Writer, r *results) {
	if len(r.cells) > 0 && len(r.cells[0].samples) > 0 && len(r.cells[0].samples[0].lags) == 0 {
		fmt.Fprintln(w, "No polls (-polls=false): the replicas answered no Checks but the load's, and the figures below are extauthz's own.")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "From the store's acknowledgement of a delete or disable to the first refusal received, in ms, p50 / p99 / max:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| replicas | revocations | each replica | all replicas | p99 ≤ 5 ms | all, lower bound | all, deletes | all, disables | late allows per revocation | poll round trip p50 / p99 | store ack p50 / p99 |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.cells {
		ss := c.samples
		if len(ss) == 0 {
			continue
		}
		late := 0
		for _, x := range ss {
			late += x.late
		}
		goal := "yes"
		if percentile(alls(ss), 0.99) > 5*time.Millisecond {
			goal = "**no**"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %.1f | %s / %s | %s / %s |\n", c.spec, len(ss), triple(lags(ss)), triple(alls(ss)),
			goal, triple(lows(ss)), triple(alls(byAction(ss, false))), triple(alls(byAction(ss, true))), float64(late)/float64(len(ss)),
			msNum(percentile(rtts(ss), 0.5)), msNum(percentile(rtts(ss), 0.99)), msNum(percentile(calls(ss), 0.5)), msNum(percentile(calls(ss), 0.99)))
	}
	fmt.Fprintln(w)
}

// printApplied is extauthz's own view, free of the polls' round trips: how late each replica
// applied each change, by Redis's clock, from its keygate_extauthz_revocation_lag_seconds.
func printApplied(w io.Writer, r *results) {
	fmt.Fprintln(w, "The same revocations by extauthz's own histogram (keygate_extauthz_revocation_lag_seconds: Redis's append → the replica's cache dropped the key; each revocation's exactly, from the histogram's sum), in ms, and every change (creations too) the replicas applied in the same windows, by bucket:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| replicas | revocation, each replica (p50 / p99 / p99.9 / max) | all replicas | p99 ≤ 5 ms | changes applied | within 1 ms | within 2.5 ms | within 5 ms | within 10 ms |")
	fmt.Fprintln(w, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.cells {
		a := c.applied
		if a.all() == 0 {
			continue
		}
		var each, all []time.Duration
		for _, x := range c.samples {
			each = append(each, x.applied...)
			all = append(all, maxOf(x.applied))
		}
		goal := "yes"
		if percentile(all, 0.99) > 5*time.Millisecond {
			goal = "**no**"
		}
		within := func(le float64) string { return fmt.Sprintf("%.1f%%", 100*float64(a[le])/float64(a.all())) }
		fmt.Fprintf(w, "| %s | %s / %s / %s / %s | %s | %s | %d | %s | %s | %s | %s |\n", c.spec, msNum(percentile(each, 0.5)),
			msNum(percentile(each, 0.99)), msNum(percentile(each, 0.999)), msNum(maxOf(each)), triple(all), goal,
			a.all(), within(0.001), within(0.0025), within(0.005), within(0.01))
	}
	fmt.Fprintln(w)
}

// waitPerSlice is the mean time a thread waited runnable before it got a CPU.
func waitPerSlice(s procstat.Sched) string {
	if s.Slices == 0 {
		return "–"
	}
	return ms(s.Wait / time.Duration(s.Slices))
}

func printLoad(w io.Writer, r *results) {
	fmt.Fprintln(w, "Load and CPU in the same windows (CPU in cores: CPU-seconds per second of window):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| replicas | window | load Checks/s | per replica | replicas CPU | per replica | Redis CPU | load generator CPU | bench (revoker, polls) CPU | total | replicas' wait for a CPU per slice | bench's |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.cells {
		if c.elapsed == 0 {
			continue
		}
		sec := c.elapsed.Seconds()
		cores := func(name string) float64 { return c.cpu[name].Seconds() / sec }
		total := cores("replicas") + cores("redis") + cores("load") + cores("bench")
		fmt.Fprintf(w, "| %s | %.1f s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n", c.spec, sec,
			float64(c.checks)/sec, float64(c.checks)/sec/float64(c.spec.replicas), cores("replicas"),
			cores("replicas")/float64(c.spec.replicas), cores("redis"), cores("load"), cores("bench"), total,
			waitPerSlice(c.sched["replicas"]), waitPerSlice(c.sched["bench"]))
	}
}
