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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// TestSentinelFailover kills the Redis master (SIGKILL) under steady traffic and checks that
// the edge never lets a refused key through, that extauthz and keystore follow the promoted
// replica without a restart, that every key acknowledged and replicated before the kill is
// still there, that a delete and a disable keystore acknowledged just before the kill survive
// it (keystore waits for the replica: --redis-min-replica-acks 1), and that revocations made
// through keystore afterwards reach extauthz's cache.
func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	set := newKeySet(t)
	last := lastMomentRevocations(t, set)
	l := startLoad(set.probes, 4)
	defer l.cancel()

	before := make(map[string]string)
	for i := range 20 {
		name, key := newKey(t, fmt.Sprintf("before-%d", i), v1.OwnedAccessKeySpec{User: localdev.AdminUser})
		before[name] = key
	}
	waitReplicated(t)
	l.waitFor(t, 300)

	last.revoke(t)
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
	last.check(t)
	l.phase.Store(int32(recovered))

	rejoin(t, killed)
	revokeThroughKeystore(t, set)
	newName, newKey := newKey(t, "after", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	if err := wantStatus(ctx, &probe{name: newName, key: newKey, path: demoPath + "/version"}, 200); err != nil {
		t.Errorf("a key made after the failover: %v", err)
	}
	l.waitFor(t, 300)
	l.stop(t)
	logFailoverFigures(t, l, killedAt, promoted, serving)
}

func logFailoverFigures(t *testing.T, l *load, killedAt time.Time, promoted, serving time.Duration) {
	t.Helper()
	l.mu.Lock()
	last503 := "none"
	if !l.lastUnavailable.IsZero() {
		last503 = l.lastUnavailable.Sub(killedAt).Round(time.Millisecond).String() + " after the kill"
	}
	l.mu.Unlock()
	t.Logf("figures: replica promoted %s after the kill; the edge served every earlier key again %s after; last 503: %s",
		promoted.Round(time.Millisecond), serving.Round(time.Millisecond), last503)
}

// lastMoment are keys revoked through keystore just before the master is killed: the attack
// this test defeats is a revocation the master acknowledged and the replica never got, which
// a failover undoes, so that the revoked key works again.
type lastMoment struct {
	deletedName, disabledName string
	deleted, disabled         *revocation
	probes                    []*probe
}

// lastMomentRevocations makes the keys and adds their probes to set's load: a 200 for either
// after the edge first refused it is a false allow.
func lastMomentRevocations(t *testing.T, set *keySet) *lastMoment {
	t.Helper()
	lm := &lastMoment{deleted: &revocation{}, disabled: &revocation{}}
	var delKey, disKey string
	lm.deletedName, delKey = newKey(t, "deleted-before-kill", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	lm.disabledName, disKey = newKey(t, "disabled-before-kill", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	lm.probes = []*probe{
		{name: "deleted just before the kill", key: delKey, path: demoPath + "/version", revoked: lm.deleted},
		{name: "disabled just before the kill", key: disKey, path: demoPath + "/version", revoked: lm.disabled},
	}
	set.probes = append(set.probes, lm.probes...)
	return lm
}

// revoke stalls the replica for two seconds (frozen, its link to the master cut: it reconnects
// only once thawed), then deletes and disables the keys through keystore. The test itself waits
// for nothing: the master is killed as soon as kubectl returns, so only keystore's own WAIT
// stands between the revocations and their loss. Without it (-min-replica-acks=0) the master
// dies while the replica still lacks both, and the promoted replica brings the keys back.
func (lm *lastMoment) revoke(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := platform.WriteKubeconfig(cfg, platform.AdminKey); err != nil {
		t.Fatal(err)
	}
	thaw, err := platform.FreezeRedisReplica(ctx)
	if err != nil {
		t.Fatalf("freeze the replica: %v", err)
	}
	stall := time.AfterFunc(2*time.Second, func() { _ = thaw() })
	t.Cleanup(func() { stall.Stop(); _ = thaw() })
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		t.Fatalf("cut the replica off: %v", err)
	}
	cut := time.Now()
	lm.deleted.start()
	runKubectl(t, cfg, "delete", "ownedaccesskeys", lm.deletedName)
	lm.disabled.start()
	runKubectl(t, cfg, "patch", "ownedaccesskeys", lm.disabledName, "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	t.Logf("figures: the delete and the disable returned %s after the replica stalled (keystore --redis-min-replica-acks %d)",
		time.Since(cut).Round(time.Millisecond), *minReplicaAcks)
}

// check runs after the failover, once extauthz serves from the promoted master: the promoted
// master has both revocations, and the edge refuses both keys (every answer, not eventually).
func (lm *lastMoment) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var deletedErr error
	eventually(t, time.Minute, "the promoted master answers", func() error {
		_, deletedErr = keys.Get(ctx, lm.deletedName)
		if deletedErr != nil && !errors.Is(deletedErr, store.ErrNotFound) {
			return deletedErr
		}
		return nil
	})
	if deletedErr == nil {
		t.Errorf("FALSE ALLOW: %s, deleted and acknowledged before the kill, is back on the promoted master", lm.deletedName)
	}
	if k, err := keys.Get(ctx, lm.disabledName); err != nil || !k.Spec.Disabled {
		t.Errorf("FALSE ALLOW: %s, disabled and acknowledged before the kill, is %+v on the promoted master (%v)", lm.disabledName, k, err)
	}
	allows := 0
	for range 20 {
		for _, p := range lm.probes {
			if got, _ := request(ctx, p); got == 200 {
				allows++
			}
		}
	}
	if allows > 0 {
		t.Errorf("FALSE ALLOW: keys revoked before the kill answered 200 %d times after the failover", allows)
	}
	t.Logf("figures: revoked just before the kill: %d false allows in %d requests after the failover", allows, 20*len(lm.probes))
}

// rejoin starts the killed master again, which the Sentinels make a replica of the new one,
// and waits until it is in sync: keystore's writes wait for a replica, and with the only one
// promoted they fail (503) until one is back — the price of the promise.
func rejoin(t *testing.T, killed string) {
	t.Helper()
	ctx := context.Background()
	if err := platform.RestartRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the old master rejoins as a replica", func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
}

// waitReplicated waits until the replica has everything the master acknowledged so far: a
// write and WAIT on the same connection (a pipeline), since WAIT counts the connection's own
// writes. The keys this test makes go straight to the store, not through keystore, so they do
// not wait for the replica themselves; the test kills the master after this.
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
