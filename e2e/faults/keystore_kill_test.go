package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"

	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// TestKeystoreKilledDuringApply kills `keystore serve` (SIGKILL) while two loops of
// `kubectl apply` create access keys and update one, through the edge, and starts it again:
// every apply kubectl reported done is in the store afterwards (an update no older than the
// last acknowledged one), every failure is one a client retries (503, the management API
// unavailable), and the edge keeps authorising requests with keys meanwhile: extauthz does not
// depend on keystore, so not one 503 there.
func TestKeystoreKilledDuringApply(t *testing.T) {
	ctx := context.Background()
	set := faultload.NewKeySet(t)
	l := faultload.StartLoad(set.Probes, 4)
	defer l.Cancel()
	l.WaitFor(t, 200)
	a := startApplies(t, 2)
	defer a.cancel()
	a.waitAcked(t, 4)

	l.Phase.Store(int32(faultload.Faulted))
	killedAt := time.Now()
	if err := platform.KillKeystore(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := platform.StartKeystore(context.Background()); err != nil {
				t.Errorf("restart keystore: %v", err)
			}
		}
	})
	a.waitFailed(t, 2)
	// Down for two seconds at least, as a restart by the kubelet is.
	time.Sleep(time.Until(killedAt.Add(2 * time.Second)))
	startedAt := time.Now()
	if err := platform.StartKeystore(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	ready := time.Since(startedAt)
	a.waitAcked(t, 4)
	l.Phase.Store(int32(faultload.Recovered))
	a.stop()
	l.WaitFor(t, 200)
	l.Stop(t)

	edge503 := l.Counts()[faultload.Faulted][faultload.Unavailable]
	if edge503 > 0 {
		t.Errorf("%d requests with keys got 503 while keystore was down: the edge's checks do not need keystore", edge503)
	}
	acked, failed, firstAckAfter := a.check(t, startedAt)
	t.Logf("figures: %d applies acknowledged, %d failed (all retriable); keystore ready %s after its start; first apply acknowledged %s after the start (%s after the kill); 503s to key checks meanwhile: %d",
		acked, failed, ready.Round(time.Millisecond), firstAckAfter.Round(time.Millisecond), (firstAckAfter + startedAt.Sub(killedAt)).Round(time.Millisecond), edge503)
}

// applies are kubectl apply loops; each worker creates a new key on even rounds and updates
// its first key's displayName (v<round>) on odd ones.
type applies struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   []applied
	acked  atomic.Int64
	failed atomic.Int64
}

// applied is one `kubectl apply`.
type applied struct {
	name     string
	round    int // the displayName's number for an update, -1 for a create
	ok       bool
	out      string
	returned time.Time
}

func startApplies(t *testing.T, workers int) *applies {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := platform.WriteKubeconfig(cfg, platform.AdminKey); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &applies{cancel: cancel}
	prefix := "faults-apply-" + randomSuffix()
	for w := range workers {
		cache, dir := t.TempDir(), t.TempDir()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			first := fmt.Sprintf("%s-w%d-0", prefix, w)
			for round := 0; ctx.Err() == nil; round++ {
				name, display := fmt.Sprintf("%s-w%d-%d", prefix, w, round), "created"
				r := applied{name: name, round: -1}
				if round%2 == 1 {
					name, display = first, fmt.Sprintf("v%d", round)
					r = applied{name: name, round: round}
				}
				manifest := filepath.Join(dir, "key.yaml")
				_ = os.WriteFile(manifest, []byte(keyManifest(name, display)), 0o600)
				r.out, r.ok = kubectlApply(ctx, cfg, cache, manifest)
				if ctx.Err() != nil {
					return
				}
				r.returned = time.Now()
				a.record(r)
			}
		}()
	}
	return a
}

func keyManifest(name, display string) string {
	return "apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: " + name +
		"\nspec:\n  user: " + localdev.AdminUser + "\n  displayName: " + display + "\n"
}

// kubectlApply runs `kubectl apply -f manifest` with the management context of cfg, discovery
// cached in cache, and returns its output and whether it succeeded.
func kubectlApply(ctx context.Context, cfg, cache, manifest string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", cfg, "--context", "loft-management", "--cache-dir", cache, "apply", "-f", manifest)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err == nil
}

func (a *applies) record(r applied) {
	a.mu.Lock()
	a.done = append(a.done, r)
	a.mu.Unlock()
	if r.ok {
		a.acked.Add(1)
	} else {
		a.failed.Add(1)
	}
}

func (a *applies) waitAcked(t *testing.T, n int64) {
	t.Helper()
	target := a.acked.Load() + n
	faultload.Eventually(t, 2*time.Minute, fmt.Sprintf("%d more applies acknowledged", n), func() error {
		if got := a.acked.Load(); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

func (a *applies) waitFailed(t *testing.T, n int64) {
	t.Helper()
	target := a.failed.Load() + n
	faultload.Eventually(t, time.Minute, fmt.Sprintf("%d applies fail with keystore down", n), func() error {
		if got := a.failed.Load(); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

func (a *applies) stop() {
	a.cancel()
	a.wg.Wait()
}

// check fails the test for an acknowledged apply that is not in the store, or a failure a
// client would not retry, and returns the counts and the first acknowledgement after started.
func (a *applies) check(t *testing.T, started time.Time) (acked, failed int, firstAck time.Duration) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	lastAcked := map[string]int{}
	for _, r := range a.done {
		if !r.ok {
			failed++
			if !retriable(r.out) {
				t.Errorf("apply of %s failed with an error a client would not retry: %s", r.name, r.out)
			} else if failed == 1 {
				t.Logf("figures: the first failed apply (%s) said: %s", r.name, r.out)
			}
			continue
		}
		acked++
		if firstAck == 0 && r.returned.After(started) {
			firstAck = r.returned.Sub(started)
		}
		if last, ok := lastAcked[r.name]; !ok || r.round > last {
			lastAcked[r.name] = r.round
		}
	}
	for name, round := range lastAcked {
		k, err := keys.Get(context.Background(), name)
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("LOST WRITE: %s was created (kubectl apply succeeded) and is not in the store", name)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		var got int
		if _, err := fmt.Sscanf(k.Spec.DisplayName, "v%d", &got); round >= 0 && (err != nil || got < round) {
			t.Errorf("LOST WRITE: %s has displayName %q, older than v%d, which kubectl apply acknowledged", name, k.Spec.DisplayName, round)
		}
	}
	return acked, failed, firstAck
}

// retriable reports whether kubectl's output is an error a client retries: the management API
// unavailable (Envoy's 503 while keystore is down), or the connection cut while it died.
func retriable(out string) bool {
	for _, s := range []string{"ServiceUnavailable", "the server is currently unable to handle the request", "503", "connection reset", "EOF"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
