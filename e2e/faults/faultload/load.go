package faultload

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load is steady traffic through the edge, every answer classified.
type Load struct {
	// Phase is where the fault stands (a Phase): the test stores Faulted when it injects the
	// fault and Recovered once the edge serves again.
	Phase atomic.Int32
	// Cancel stops the traffic without the checks of Stop (for a deferred call).
	Cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts [Phases][Outcomes]int
	total  atomic.Int64
	// worst are the first few wrong answers, for the failure message.
	worst []string
	// lastUnavailable is when the latest 503 came back; slowest the longest wait per phase.
	lastUnavailable time.Time
	slowest         [Phases]time.Duration
	// statuses are the answers' statuses by probe (ProbeStatuses).
	statuses map[*Probe]map[int]int
}

// StartLoad sends probes round-robin from workers goroutines, each pausing a little between
// requests so that the load is steady rather than saturating two cores.
func StartLoad(probes []*Probe, workers int) *Load {
	return StartLoadPaced(probes, workers, 5*time.Millisecond)
}

// StartLoadPaced is StartLoad with each worker pausing pause between requests.
func StartLoadPaced(probes []*Probe, workers int, pause time.Duration) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{Cancel: cancel}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				l.send(ctx, probes[i%len(probes)])
				time.Sleep(pause)
			}
		}()
	}
	return l
}

// StartLoadRate sends probes round-robin at about rps requests a second in all, each taken by
// whichever of workers goroutines is free (a tick that finds all of them waiting for answers
// is dropped: the load never piles up behind a slow edge).
func StartLoadRate(probes []*Probe, workers int, rps float64) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{Cancel: cancel}
	next := make(chan int)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(next)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case next <- i:
			default:
			}
		}
	}()
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := range next {
				l.send(ctx, probes[i%len(probes)])
			}
		}()
	}
	return l
}

// send sends one probe and records its outcome, in the phase it was sent in, or in Faulted if
// the fault was injected before its answer came back: a request in flight when the fault
// strikes (a connection cut, a check on a replica killed) is the fault's, not the healthy
// phase's.
func (l *Load) send(ctx context.Context, p *Probe) {
	ph := Phase(l.Phase.Load())
	sent := time.Now()
	status, detail := Request(ctx, p)
	if ctx.Err() != nil {
		return // stopping: the answer was cut off, not given
	}
	got := time.Now()
	if Phase(l.Phase.Load()) == Faulted {
		ph = Faulted
	}
	p.Observe(sent, got, status)
	o := Classify(p.Want(sent, got), status)
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[ph][o]++
	if l.statuses == nil {
		l.statuses = map[*Probe]map[int]int{}
	}
	if l.statuses[p] == nil {
		l.statuses[p] = map[int]int{}
	}
	l.statuses[p][status]++
	l.slowest[ph] = max(l.slowest[ph], got.Sub(sent))
	if o == Unavailable {
		l.lastUnavailable = got
	}
	// A 503 is the honest answer during a fault, and a wrong one outside it.
	if o != Correct && (o != Unavailable || ph != Faulted) && len(l.worst) < 10 {
		l.worst = append(l.worst, fmt.Sprintf("%s: %s (%s, %s): %d %s", sent.Format("15:04:05.000"), OutcomeNames[o], p.Name, PhaseNames[ph], status, detail))
	}
}

// Request sends p through the edge: its status, or 0 and the error.
func Request(ctx context.Context, p *Probe) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, Platform.EdgeURL+p.Path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+p.Key)
	resp, err := Client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// WaitFor waits until n more answers have been counted (a minute at most, which at this pace
// is hundreds of times what n needs).
func (l *Load) WaitFor(t *testing.T, n int64) {
	t.Helper()
	target := l.total.Load() + n
	deadline := time.Now().Add(time.Minute)
	for l.total.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the traffic stalled: %d answers, waiting for %d", l.total.Load(), target)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Total is how many answers have been counted so far.
func (l *Load) Total() int64 { return l.total.Load() }

// Counts are the answers so far, by phase and outcome.
func (l *Load) Counts() [Phases][Outcomes]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

// Halt stops the traffic and waits for the last answers, without the checks of Stop: for a
// caller that judges the counts itself (Counts, Wrong).
func (l *Load) Halt() {
	l.Cancel()
	l.wg.Wait()
}

// Wrong are the first few wrong answers (neither right nor a 503 during the fault), described.
func (l *Load) Wrong() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.worst...)
}

// ProbeStatuses are the statuses of p's answers so far, counted by status (0: no answer).
func (l *Load) ProbeStatuses(p *Probe) map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.statuses[p])
}

// LastUnavailable is when the latest 503 came back (zero: none yet).
func (l *Load) LastUnavailable() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastUnavailable
}

// Stop stops the traffic, logs the counts and fails the test on any false allow, any other
// answer, and any false deny outside the fault.
func (l *Load) Stop(t *testing.T) {
	t.Helper()
	l.Cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for ph := range Phases {
		var b strings.Builder
		for o := range Outcomes {
			fmt.Fprintf(&b, " %s %d;", OutcomeNames[o], l.counts[ph][o])
		}
		t.Logf("answers %s:%s slowest %s", PhaseNames[ph], b.String(), l.slowest[ph].Round(time.Millisecond))
	}
	for _, w := range l.worst {
		t.Log("wrong answer:", w)
	}
	for ph := range Phases {
		if n := l.counts[ph][FalseAllow]; n > 0 {
			t.Errorf("%d false allows %s", n, PhaseNames[ph])
		}
		if n := l.counts[ph][OtherAnswer]; n > 0 {
			t.Errorf("%d answers neither right, 503 nor a refusal %s", n, PhaseNames[ph])
		}
	}
	for _, ph := range []Phase{Healthy, Recovered} {
		if n := l.counts[ph][FalseDeny]; n > 0 {
			t.Errorf("%d false denies %s", n, PhaseNames[ph])
		}
	}
}
