//go:build soak

package soak

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// A figure of a Measure, with the growth that is more than noise: the mean of the last third of
// the samples above both Factor times the mean of the first third and that mean plus Floor. The
// factor keeps a small process's normal swings from failing; the floor keeps a large one's
// (Envoy's heap, Redis's allocator) from failing on a few megabytes.
type figure struct {
	Name   string
	Unit   string
	Get    func(Measure) int64
	Factor float64
	Floor  int64
	Show   func(int64) string
}

const mib = 1 << 20

var figures = []figure{
	{Name: "RSS", Unit: "MiB", Get: func(m Measure) int64 { return m.RSS }, Factor: 1.5, Floor: 32 * mib, Show: showMiB},
	{Name: "goroutines", Get: func(m Measure) int64 { return m.Goroutines }, Factor: 1.5, Floor: 100, Show: showInt},
	{Name: "open fds", Get: func(m Measure) int64 { return m.FDs }, Factor: 1.5, Floor: 50, Show: showInt},
	{Name: "Redis used_memory", Unit: "MiB", Get: func(m Measure) int64 { return m.RedisUsed }, Factor: 1.5, Floor: 16 * mib, Show: showMiB},
}

func showMiB(v int64) string { return fmt.Sprintf("%.1f", float64(v)/mib) }
func showInt(v int64) string { return fmt.Sprint(v) }

// minSamples is the fewest samples growth is judged on (two in each third).
const minSamples = 6

// growth returns a line per series that grew beyond noise, and a line per series saying what
// it did (for the log).
func growth(samples []Sample) (grew, seen []string) {
	if len(samples) < minSamples {
		return nil, []string{fmt.Sprintf("%d samples: too few to judge growth (%d needed)", len(samples), minSamples)}
	}
	third := len(samples) / 3
	for _, name := range components(samples) {
		for _, f := range figures {
			var first, last []int64
			for i, s := range samples {
				m, ok := s.Of[name]
				if !ok || f.Get(m) < 0 {
					continue
				}
				switch {
				case i < third:
					first = append(first, f.Get(m))
				case i >= len(samples)-third:
					last = append(last, f.Get(m))
				}
			}
			if len(first) == 0 || len(last) == 0 {
				continue
			}
			a, b := mean(first), mean(last)
			line := fmt.Sprintf("%s %s: first third %s, last third %s", name, f.Name, f.Show(a), f.Show(b))
			seen = append(seen, line)
			if float64(b) > f.Factor*float64(a) && b > a+f.Floor {
				grew = append(grew, fmt.Sprintf("%s (more than %.1fx and %s more)", line, f.Factor, f.Show(f.Floor)))
			}
		}
	}
	return grew, seen
}

func mean(v []int64) int64 {
	var sum int64
	for _, x := range v {
		sum += x
	}
	return sum / int64(len(v))
}

// components are every component name of the samples: keygate's in the order of a request's
// path (xds, the extauthz replicas, keystore), Envoy, then the Redis servers, each group by name.
func components(samples []Sample) []string {
	var names []string
	for _, s := range samples {
		for name := range s.Of {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return names
}

// rank orders the kinds of component in the table.
func rank(name string) int {
	for i, prefix := range []string{"xds", "extauthz", "keystore", "envoy"} {
		if strings.HasPrefix(name, prefix) {
			return i
		}
	}
	return 4 // redis-<port>
}

// table is the samples as Markdown: a row per sample, a column per component (each extauthz
// replica its own) with its RSS (MiB), goroutines and open fds, and the Redis servers'
// used_memory (MiB) summed over the data nodes, with their RSS summed likewise.
func table(samples []Sample) string {
	var b strings.Builder
	var names []string
	for _, n := range components(samples) {
		if !strings.HasPrefix(n, "redis-") {
			names = append(names, n)
		}
	}
	b.WriteString("Each component: RSS MiB / goroutines / open fds (— where none).\n\n| minute | answers/s |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s |", n)
	}
	b.WriteString(" Redis used_memory MiB (all nodes) | Redis RSS MiB (all nodes) |\n|")
	for range len(names) + 4 {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for i, s := range samples {
		rate := "—"
		if i > 0 {
			rate = fmt.Sprintf("%.0f", float64(s.Answers-samples[i-1].Answers)/s.At.Sub(samples[i-1].At).Seconds())
		}
		fmt.Fprintf(&b, "| %.0f | %s |", s.At.Sub(samples[0].At).Minutes(), rate)
		for _, n := range names {
			b.WriteString(" " + cell(s.Of, n) + " |")
		}
		var used, rssSum int64
		for name, m := range s.Of {
			if strings.HasPrefix(name, "redis-") {
				used += max(m.RedisUsed, 0)
				rssSum += max(m.RSS, 0)
			}
		}
		fmt.Fprintf(&b, " %s | %s |\n", showMiB(used), showMiB(rssSum))
	}
	return b.String()
}

// cell is component n's figures in one sample: RSS MiB / goroutines / fds.
func cell(of map[string]Measure, n string) string {
	m, ok := of[n]
	if !ok {
		return "—"
	}
	g := "—"
	if m.Goroutines >= 0 {
		g = fmt.Sprint(m.Goroutines)
	}
	return fmt.Sprintf("%s / %s / %d", showMiB(m.RSS), g, m.FDs)
}
