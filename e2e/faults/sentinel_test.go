package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// TestSentinelFailover kills the Redis master (SIGKILL) under steady traffic and checks that
// the edge never lets a refused key through, that extauthz and keystore follow the promoted
// replica without a restart, that every key acknowledged and replicated before the kill is
// still there, and that revocations made through keystore afterwards reach extauthz's cache.
func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	set := newKeySet(t)
	l := startLoad(set.probes, 4)
	defer l.cancel()
	l.waitFor(t, 300)

	before := make(map[string]string)
	for i := range 20 {
		name, key := newKey(t, fmt.Sprintf("before-%d", i), v1.OwnedAccessKeySpec{User: localdev.AdminUser})
		before[name] = key
	}
	waitReplicated(t)

	l.phase.Store(int32(faulted))
	killedAt := time.Now()
	killed, err := platform.KillRedisMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the Sentinels promote the replica", func() error {
		if m, err := platform.RedisMaster(ctx); err != nil || m == killed {
			return fmt.Errorf("master %s, %v", m, err)
		}
		return nil
	})
	promoted := time.Since(killedAt)
	for name, key := range before {
		eventually(t, time.Minute, "key "+name+", acknowledged before the kill, works", func() error {
			return wantStatus(ctx, &probe{name: name, key: key, path: demoPath + "/version"}, 200)
		})
	}
	serving := time.Since(killedAt)
	l.phase.Store(int32(recovered))

	revokeThroughKeystore(t, set)
	newName, newKey := newKey(t, "after", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	if err := wantStatus(ctx, &probe{name: newName, key: newKey, path: demoPath + "/version"}, 200); err != nil {
		t.Errorf("a key made after the failover: %v", err)
	}
	l.waitFor(t, 300)
	l.stop(t)
	l.mu.Lock()
	last503 := "none"
	if !l.lastUnavailable.IsZero() {
		last503 = l.lastUnavailable.Sub(killedAt).Round(time.Millisecond).String() + " after the kill"
	}
	l.mu.Unlock()
	t.Logf("figures: replica promoted %s after the kill; the edge served every earlier key again %s after; last 503: %s",
		promoted.Round(time.Millisecond), serving.Round(time.Millisecond), last503)
}

// waitReplicated waits until the replica has everything the master acknowledged so far: a
// write and WAIT on the same connection (a pipeline), since WAIT counts the connection's own
// writes. The durability promised (docs/reliability.md) is "acknowledged means on the master";
// a kill before replication loses what the replica lacked, so the test kills after this.
func waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var wait *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{accesskeys}:faults-barrier", time.Now().String(), time.Minute)
		wait = p.Do(ctx, "WAIT", 1, 10000) // replicas, milliseconds
		return nil
	})
	if n, _ := wait.Int64(); err != nil || n < 1 {
		t.Fatalf("the replica did not acknowledge the writes: %d replicas, %v", n, err)
	}
}

// revokeThroughKeystore deletes one key and disables another with kubectl through the edge's
// management API (keystore serve, which must have followed the new master), and waits until
// the edge refuses both.
func revokeThroughKeystore(t *testing.T, set *keySet) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := platform.WriteKubeconfig(cfg, platform.AdminKey); err != nil {
		t.Fatal(err)
	}
	set.deleted.start()
	runKubectl(t, cfg, "delete", "ownedaccesskeys", set.deletedName)
	deleted := time.Now()
	set.disabled.start()
	runKubectl(t, cfg, "patch", "ownedaccesskeys", set.disabledName, "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	disabled := time.Now()
	for what, r := range map[string]*revocation{"deleted": set.deleted, "disabled": set.disabled} {
		eventually(t, 30*time.Second, "the edge refuses the "+what+" key", func() error {
			if r.refusedAt().IsZero() {
				return fmt.Errorf("not refused yet")
			}
			return nil
		})
	}
	t.Logf("figures: revocations after the failover refused by the edge %s (delete) and %s (disable) after kubectl returned",
		set.deleted.refusedAt().Sub(deleted).Round(time.Millisecond), set.disabled.refusedAt().Sub(disabled).Round(time.Millisecond))
}

func runKubectl(t *testing.T, cfg string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", cfg, "--context", "loft-management"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out.String())
	}
}

// wantStatus sends p once and says how its answer differs from status.
func wantStatus(ctx context.Context, p *probe, status int) error {
	if got, detail := request(ctx, p); got != status {
		return fmt.Errorf("%s: %d %s, want %d", p.name, got, detail, status)
	}
	return nil
}

// eventually polls f until it returns nil, failing the test after within: a bound on a hung
// run, far above what any step needs, never a measurement.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
