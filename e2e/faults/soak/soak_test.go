//go:build soak

package soak

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// workers is how many requests the load may have in flight at once.
const workers = 8

// injected is what one fault cost clients.
type injected struct {
	name                 string
	at, recovered        time.Duration // since the soak's start; how long Inject took
	answers, unavailable int
	falseAllows, others  int
	last503              string
	churn503             int // churn's writes and uses answered 503 meanwhile (keystore down)
	// own503 are the 503s meanwhile to the fault's own probes (Fault.Prepare's), which answer 503
	// by design while it lasts.
	own503 int
	notes  string // what the fault noted (note)
}

// TestSoak: the load (half the measured maximum), the churn and the faults on their schedule,
// for -soak-duration; a sample of every component every -soak-sample, printed as a table. It
// fails on any false allow and on growth beyond noise (growth.go).
func TestSoak(t *testing.T) {
	ctx := context.Background()
	set := faultload.NewKeySet(t)
	list := chosen(t)
	// The kinds of key whose right answer never changes (revocations are churn's), and the
	// faults' own.
	probes := append(set.Probes[:5:5], prepare(t, list, set)...)
	target := loadTarget(t, probes)

	c := &churn{user: "soak-" + strings.ToLower(rand.Text()[:8]), password: "pw-" + rand.Text()}
	if _, err := platform.RunKeystore(ctx, strings.NewReader(c.password+"\n"), "create-user", c.user, "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	lost.arm(probes, c) // before the load reads the probes
	l := faultload.StartLoadRate(probes, workers, target)
	defer l.Cancel()
	churnCtx, stopChurn := context.WithCancel(ctx)
	churnDone := make(chan struct{})
	go func() { defer close(churnDone); c.run(churnCtx, 2*time.Second) }()

	start := time.Now()
	var mu sync.Mutex
	samples := []Sample{measureAll(ctx, l.Total())}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplingDone := make(chan struct{})
	go func() {
		defer close(samplingDone)
		tick := time.NewTicker(*sample)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
				s := measureAll(ctx, l.Total())
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		}
	}()

	var done []injected
	for i, f := range list {
		sleepUntil(start.Add(*duration * time.Duration(i+1) / time.Duration(len(list)+1)))
		done = append(done, inject(t, l, c, f, start))
	}
	sleepUntil(start.Add(*duration))
	stopSampling()
	<-samplingDone
	samples = append(samples, measureAll(ctx, l.Total()))
	stopChurn()
	<-churnDone
	l.Halt()
	report(t, l, c, samples, done, target)
}

// prepare runs the faults' Prepare and returns the probes they add to the load.
func prepare(t *testing.T, list []Fault, set *faultload.KeySet) []*faultload.Probe {
	t.Helper()
	var probes []*faultload.Probe
	for i, f := range list {
		if f.Prepare != nil {
			list[i].probes = f.Prepare(t, set)
			probes = append(probes, list[i].probes...)
		}
	}
	return probes
}

// loadTarget is -soak-rps, or -soak-load times the most the edge answered with workers
// sending back to back for -soak-measure.
func loadTarget(t *testing.T, probes []*faultload.Probe) float64 {
	t.Helper()
	if *rps > 0 {
		return *rps
	}
	l := faultload.StartLoadPaced(probes, workers, 0)
	time.Sleep(*measure)
	n := l.Total()
	l.Halt()
	peak := float64(n) / measure.Seconds()
	if c := l.Counts()[faultload.Healthy]; c[faultload.FalseAllow] > 0 {
		t.Errorf("%d false allows while measuring the maximum load", c[faultload.FalseAllow])
	}
	t.Logf("figures: the edge answered %.0f requests a second at most (%d workers back to back for %s); the soak runs at %.0f%% of it, %.0f a second",
		peak, workers, *measure, 100**fraction, peak**fraction)
	return peak * *fraction
}

// inject runs f with the load's phase at "during the fault" until a few seconds after it
// returns, and counts what the load and churn saw meanwhile. Churn's 503s are unavailability, as
// the load's are: only a false allow (counted with the load's in report) fails the run.
func inject(t *testing.T, l *faultload.Load, c *churn, f Fault, start time.Time) injected {
	t.Helper()
	t.Logf("fault %s at %s", f.Name, time.Since(start).Round(time.Second))
	before, churnBefore, ownBefore := l.Counts()[faultload.Faulted], c.unavailableSoFar(), unavailableTo(l, f.probes)
	takeNotes()
	l.Phase.Store(int32(faultload.Faulted))
	at := time.Now()
	f.Inject(t)
	recovered := time.Since(at)
	time.Sleep(5 * time.Second) // what the edge still answers from before the recovery
	l.Phase.Store(int32(faultload.Recovered))
	after := l.Counts()[faultload.Faulted]
	r := injected{name: f.Name, at: at.Sub(start), recovered: recovered, last503: "none", churn503: c.unavailableSoFar() - churnBefore,
		own503: unavailableTo(l, f.probes) - ownBefore, notes: takeNotes()}
	for o := range faultload.Outcomes {
		r.answers += after[o] - before[o]
	}
	r.unavailable = after[faultload.Unavailable] - before[faultload.Unavailable]
	r.falseAllows = after[faultload.FalseAllow] - before[faultload.FalseAllow]
	r.others = after[faultload.OtherAnswer] + after[faultload.FalseDeny] - before[faultload.OtherAnswer] - before[faultload.FalseDeny]
	if last := l.LastUnavailable(); last.After(at) {
		r.last503 = last.Sub(at).Round(time.Millisecond).String()
	}
	return r
}

// unavailableTo is how many of the load's answers to probes were 503 so far.
func unavailableTo(l *faultload.Load, probes []*faultload.Probe) int {
	n := 0
	for _, p := range probes {
		n += l.ProbeStatuses(p)[http.StatusServiceUnavailable]
	}
	return n
}

func sleepUntil(when time.Time) {
	if d := time.Until(when); d > 0 {
		time.Sleep(d)
	}
}

// report logs the counts, the faults and the samples' table, and fails the test on false allows
// and on growth beyond noise.
func report(t *testing.T, l *faultload.Load, c *churn, samples []Sample, done []injected, target float64) {
	t.Helper()
	counts := l.Counts()
	var allows, total int
	for ph := range faultload.Phases {
		var b strings.Builder
		for o := range faultload.Outcomes {
			fmt.Fprintf(&b, " %s %d;", faultload.OutcomeNames[o], counts[ph][o])
			total += counts[ph][o]
		}
		allows += counts[ph][faultload.FalseAllow]
		t.Logf("load %s:%s", faultload.PhaseNames[ph], b.String())
	}
	for _, w := range l.Wrong() {
		t.Log("wrong answer:", w)
	}
	t.Logf("churn: %s", c.summary())
	c.mu.Lock()
	allows += c.answers[faultload.FalseAllow]
	for _, w := range c.worst {
		t.Log("churn:", w)
	}
	c.mu.Unlock()

	t.Logf("\n%s at %.0f requests a second (%d answers in all), Redis %s; false allows: %d; 503s outside the faults' windows: %d before the first, %d after recoveries\n\n%s\n%s",
		*duration, target, total, platform.RedisShape(), allows, counts[faultload.Healthy][faultload.Unavailable], counts[faultload.Recovered][faultload.Unavailable],
		faultTable(done), table(samples))

	grew, seen := growth(samples)
	for _, s := range seen {
		t.Log("growth:", s)
	}
	for _, g := range grew {
		t.Errorf("growth beyond noise: %s", g)
	}
	if allows > 0 {
		t.Errorf("%d false allows", allows)
	}
}

// faultTable is a Markdown row per injected fault. A fault's 503s include those its own probes
// (Fault.Prepare) got by design, said apart.
func faultTable(done []injected) string {
	var b strings.Builder
	b.WriteString("| fault | at | recovered after | answers meanwhile | 503 | false allow | other or false deny | last 503 after the injection | churn 503 | notes |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range done {
		unavailable := fmt.Sprint(r.unavailable)
		if r.own503 > 0 {
			unavailable = fmt.Sprintf("%d (%d on its own target, %d elsewhere)", r.unavailable, r.own503, r.unavailable-r.own503)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %d | %d | %s | %d | %s |\n", r.name, r.at.Round(time.Second), r.recovered.Round(time.Millisecond),
			r.answers, unavailable, r.falseAllows, r.others, r.last503, r.churn503, r.notes)
	}
	return b.String()
}
