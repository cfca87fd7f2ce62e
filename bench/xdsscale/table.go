package main

import (
	"fmt"
	"strings"
	"time"
)

// row is one figure of the table: its label and how to show it for a result.
type row struct {
	label string
	value func(*result) float64
	unit  string // s, MB, KB, count
}

func seconds(d time.Duration) float64 { return d.Seconds() }
func mb(b int64) float64              { return float64(b) / (1 << 20) }
func kb(b int) float64                { return float64(b) / 1024 }

// perSecond is v over window, 0 without a window.
func perSecond(v float64, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return v / window.Seconds()
}

func typeRow(label string, t func(*result) traffic, typ string) row {
	return row{label, func(r *result) float64 { return float64(t(r).ByType[typ].Resources) }, "count"}
}

var rows = []row{
	{"declaring the targets before xds starts (file written / objects created)", func(r *result) float64 { return seconds(r.Setup) }, "s"},
	{"xds exec → ready (targets loaded, translated, published)", func(r *result) float64 { return seconds(r.XDSReady) }, "s"},
	{"Envoy exec → stats: all clusters active, listener, routes", func(r *result) float64 { return seconds(r.EnvoyStats) }, "s"},
	{"Envoy exec → sampled targets answer from their upstream", func(r *result) float64 { return seconds(r.EnvoySampled) }, "s"},
	{"empty → serving (xds exec → sampled targets answer)", func(r *result) float64 { return seconds(r.XDSReady + r.EnvoySampled) }, "s"},
	{"xds CPU, initial load + push to Envoy", func(r *result) float64 { return seconds(r.Initial.CPU) }, "s"},
	{"xds peak RSS (VmHWM), initial", func(r *result) float64 { return mb(r.Initial.HWM) }, "MB"},
	{"xds steady RSS after the initial load", func(r *result) float64 { return mb(r.InitialSteady) }, "MB"},
	{"xds Go heap in use then (live data; RSS also holds freed memory)", func(r *result) float64 { return mb(r.InitialHeap) }, "MB"},
	{"xds Go heap in use per target then", func(r *result) float64 { return float64(r.InitialHeap) / 1024 / float64(r.N) }, "KB"},
	{"xds live heap per target then (allocated right after a forced GC)", func(r *result) float64 { return float64(r.InitialLive) / 1024 / float64(r.N) }, "KB"},
	{"xds open file descriptors then", func(r *result) float64 { return float64(r.InitialFDs) }, "count"},
	{"xds at rest, a minute after: connected clusters polled per second", func(r *result) float64 { return perSecond(r.RestPolls, r.RestWindow) }, "count"},
	{"xds at rest then: CPU, % of a core", func(r *result) float64 { return 100 * perSecond(r.RestCPU.Seconds(), r.RestWindow) }, "%"},
	{"Envoy CPU, initial", func(r *result) float64 { return seconds(r.EnvoyInitial.CPU) }, "s"},
	{"Envoy steady RSS", func(r *result) float64 { return mb(r.EnvoySteadyRSS) }, "MB"},
	{"add one target: change written → xds published", func(r *result) float64 { return seconds(r.Add.Published) }, "s"},
	{"add one target: change written → served by Envoy", func(r *result) float64 { return seconds(r.Add.Latency) }, "s"},
	{"add one target: xds CPU", func(r *result) float64 { return seconds(r.Add.XDSCPU) }, "s"},
	{"add one target: xds peak RSS (VmHWM)", func(r *result) float64 { return mb(r.Add.XDSPeak) }, "MB"},
	{"move one target's upstream: change written → xds published", func(r *result) float64 { return seconds(r.Move.Published) }, "s"},
	{"move one target's upstream: change written → served", func(r *result) float64 { return seconds(r.Move.Latency) }, "s"},
	{"move one target's upstream: xds CPU", func(r *result) float64 { return seconds(r.Move.XDSCPU) }, "s"},
	{"move one target's upstream: xds peak RSS (VmHWM)", func(r *result) float64 { return mb(r.Move.XDSPeak) }, "MB"},
	{"xds steady RSS after the changes", func(r *result) float64 { return mb(r.Move.XDSRSS) }, "MB"},
	{"full configuration over delta ADS (all responses)", func(r *result) float64 { return kb(r.Full.Bytes) }, "KB"},
	typeRow("full configuration: clusters", func(r *result) traffic { return r.Full }, "CDS"),
	typeRow("full configuration: secrets", func(r *result) traffic { return r.Full }, "SDS"),
	typeRow("full configuration: route configurations", func(r *result) traffic { return r.Full }, "RDS"),
	{"add one target: xDS update size (all responses)", func(r *result) float64 { return kb(r.AddBytes.Bytes) }, "KB"},
	{"add one target: responses", func(r *result) float64 { return float64(r.AddBytes.Responses) }, "count"},
	{"add one target: CDS bytes", func(r *result) float64 { return kb(r.AddBytes.ByType["CDS"].Bytes) }, "KB"},
	{"add one target: SRDS bytes", func(r *result) float64 { return kb(r.AddBytes.ByType["SRDS"].Bytes) }, "KB"},
	{"add one target: RDS bytes", func(r *result) float64 { return kb(r.AddBytes.ByType["RDS"].Bytes) }, "KB"},
	{"add one target: SDS bytes", func(r *result) float64 { return kb(r.AddBytes.ByType["SDS"].Bytes) }, "KB"},
	{"add one target: resources sent (CDS+LDS+SRDS+RDS+SDS)", func(r *result) float64 { return float64(resources(r.AddBytes)) }, "count"},
	{"move one target: xDS update size (all responses)", func(r *result) float64 { return kb(r.MoveBytes.Bytes) }, "KB"},
	{"move one target: responses", func(r *result) float64 { return float64(r.MoveBytes.Responses) }, "count"},
	{"move one target: CDS bytes", func(r *result) float64 { return kb(r.MoveBytes.ByType["CDS"].Bytes) }, "KB"},
	{"move one target: RDS bytes", func(r *result) float64 { return kb(r.MoveBytes.ByType["RDS"].Bytes) }, "KB"},
	{"move one target: resources sent (CDS+LDS+SRDS+RDS+SDS)", func(r *result) float64 { return float64(resources(r.MoveBytes)) }, "count"},
}

func resources(t traffic) int {
	n := 0
	for _, tt := range t.ByType {
		n += tt.Resources
	}
	return n
}

func format(v float64, unit string) string {
	switch unit {
	case "count":
		return fmt.Sprintf("%.0f", v)
	case "s":
		if v < 10 {
			return fmt.Sprintf("%.2f s", v)
		}
		return fmt.Sprintf("%.1f s", v)
	default:
		if v < 10 {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}

// table is the Markdown table of results, one column per run, and the ratio of the last two
// runs (e.g. 10,000 / 1,000 targets): how the figure grows with the number of targets.
func table(rs []*result) string {
	var b strings.Builder
	b.WriteString("| figure |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %d targets |", r.N)
	}
	ratio := len(rs) >= 2
	if ratio {
		fmt.Fprintf(&b, " ratio %d/%d |", rs[len(rs)-1].N, rs[len(rs)-2].N)
	}
	b.WriteString("\n| --- |")
	for range rs {
		b.WriteString(" ---: |")
	}
	if ratio {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |", row.label)
		for _, r := range rs {
			fmt.Fprintf(&b, " %s |", format(row.value(r), row.unit))
		}
		if ratio {
			last, prev := row.value(rs[len(rs)-1]), row.value(rs[len(rs)-2])
			if prev > 0 {
				fmt.Fprintf(&b, " ×%.1f |", last/prev)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// summary is one line per run for the progress output.
func (r *result) summary() string {
	return fmt.Sprintf("  %d targets: empty → serving %s; add %s, move %s; xds peak %.0f MB; one-target update %.1f KB (add), %.1f KB (move)",
		r.N, (r.XDSReady + r.EnvoySampled).Round(time.Millisecond), r.Add.Latency.Round(time.Millisecond), r.Move.Latency.Round(time.Millisecond),
		mb(r.Initial.HWM), kb(r.AddBytes.Bytes), kb(r.MoveBytes.Bytes))
}
