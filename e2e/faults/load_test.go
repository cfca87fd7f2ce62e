package faults

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// keySet is the keys of the traffic, one per kind of right answer.
type keySet struct {
	probes []*probe
	// deleted and disabled are revoked while the fault runs its course; their names are the
	// objects to delete and disable.
	deleted, disabled         *revocation
	deletedName, disabledName string
}

func newKeySet(t *testing.T) *keySet {
	t.Helper()
	scope := &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{NonResourceURLs: []string{"/version"}}}}
	_, allowed := newKey(t, "allowed", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	_, scoped := newKey(t, "scoped", v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: scope})
	_, disabled := newKey(t, "disabled", v1.OwnedAccessKeySpec{User: localdev.AdminUser, Disabled: true})
	s := &keySet{deleted: &revocation{}, disabled: &revocation{}}
	var toDelete, toDisable string
	s.deletedName, toDelete = newKey(t, "deleted", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	s.disabledName, toDisable = newKey(t, "disabled-later", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	s.probes = []*probe{
		{name: "allowed", key: allowed, path: demoPath + "/version"},
		{name: "scoped, in scope", key: scoped, path: demoPath + "/version"},
		{name: "scoped, out of scope", key: scoped, path: demoPath + "/api/v1/namespaces", refuse: true},
		{name: "unknown", key: "unknown-" + rand.Text(), path: demoPath + "/version", refuse: true},
		{name: "disabled", key: disabled, path: demoPath + "/version", refuse: true},
		{name: "deleted during the run", key: toDelete, path: demoPath + "/version", revoked: s.deleted},
		{name: "disabled during the run", key: toDisable, path: demoPath + "/version", revoked: s.disabled},
	}
	return s
}

// newKey creates an access key in the store, as keystore would, and returns its name and key.
func newKey(t *testing.T, prefix string, spec v1.OwnedAccessKeySpec) (name, key string) {
	t.Helper()
	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "faults-" + prefix + "-" + strings.ToLower(rand.Text()[:8])}, Spec: spec}
	key, err := keys.Create(context.Background(), obj)
	if err != nil {
		t.Fatalf("create access key: %v", err)
	}
	return obj.Name, key
}

// load is steady traffic through the edge, every answer classified.
type load struct {
	phase  atomic.Int32
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts [phases][outcomes]int
	total  atomic.Int64
	// worst are the first few wrong answers, for the failure message.
	worst []string
	// lastUnavailable is when the latest 503 came back; slowest the longest wait per phase.
	lastUnavailable time.Time
	slowest         [phases]time.Duration
}

// startLoad sends probes round-robin from workers goroutines, each pausing a little between
// requests so that the load is steady rather than saturating two cores.
func startLoad(probes []*probe, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				l.send(ctx, probes[i%len(probes)])
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// send sends one probe and records its outcome.
func (l *load) send(ctx context.Context, p *probe) {
	ph := phase(l.phase.Load())
	sent := time.Now()
	status, detail := request(ctx, p)
	if ctx.Err() != nil {
		return // stopping: the answer was cut off, not given
	}
	got := time.Now()
	p.observe(sent, got, status)
	o := classify(p.want(sent), status)
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[ph][o]++
	l.slowest[ph] = max(l.slowest[ph], got.Sub(sent))
	if o == unavailable {
		l.lastUnavailable = got
	}
	if o != correct && o != unavailable && len(l.worst) < 10 {
		l.worst = append(l.worst, fmt.Sprintf("%s: %s (%s, %s): %d %s", sent.Format("15:04:05.000"), outcomeNames[o], p.name, phaseNames[ph], status, detail))
	}
}

// request sends p through the edge: its status, or 0 and the error.
func request(ctx context.Context, p *probe) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, platform.EdgeURL+p.path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// waitFor waits until n more answers have been counted (a minute at most, which at this pace
// is hundreds of times what n needs).
func (l *load) waitFor(t *testing.T, n int64) {
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

// stop stops the traffic, logs the counts and fails the test on any false allow, any other
// answer, and any false deny outside the fault.
func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for ph := range phases {
		var b strings.Builder
		for o := range outcomes {
			fmt.Fprintf(&b, " %s %d;", outcomeNames[o], l.counts[ph][o])
		}
		t.Logf("answers %s:%s slowest %s", phaseNames[ph], b.String(), l.slowest[ph].Round(time.Millisecond))
	}
	for _, w := range l.worst {
		t.Log("wrong answer:", w)
	}
	for ph := range phases {
		if n := l.counts[ph][falseAllow]; n > 0 {
			t.Errorf("%d false allows %s", n, phaseNames[ph])
		}
		if n := l.counts[ph][otherAnswer]; n > 0 {
			t.Errorf("%d answers neither right, 503 nor a refusal %s", n, phaseNames[ph])
		}
	}
	for _, ph := range []phase{healthy, recovered} {
		if n := l.counts[ph][falseDeny]; n > 0 {
			t.Errorf("%d false denies %s", n, phaseNames[ph])
		}
	}
}
