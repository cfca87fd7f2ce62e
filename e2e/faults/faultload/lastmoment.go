package faultload

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// LastMoment are keys revoked through keystore just before a Redis master is killed: the attack
// a failover test defeats is a revocation the master acknowledged and the replica never got,
// which the failover undoes, so that the revoked key works again.
type LastMoment struct {
	DeletedName, DisabledName string
	Deleted, Disabled         *Revocation
	Probes                    []*Probe
}

// LastMomentRevocations makes the keys and adds their probes to set's load: a 200 for either
// after every extauthz replica applied its revocation on the promoted master (Check) is a false
// allow.
func LastMomentRevocations(t *testing.T, set *KeySet) *LastMoment {
	t.Helper()
	lm := &LastMoment{Deleted: &Revocation{}, Disabled: &Revocation{}}
	var delKey, disKey string
	lm.DeletedName, delKey = NewKey(t, "deleted-before-kill", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	lm.DisabledName, disKey = NewKey(t, "disabled-before-kill", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	lm.Probes = []*Probe{
		{Name: "deleted just before the kill", Key: delKey, Path: DemoPath + "/version", Revoked: lm.Deleted},
		{Name: "disabled just before the kill", Key: disKey, Path: DemoPath + "/version", Revoked: lm.Disabled},
	}
	set.Probes = append(set.Probes, lm.Probes...)
	return lm
}

// Stall cuts the replica that must receive the revocations off its master, and returns how to
// let it catch up again: e.g. the replica frozen (SIGSTOP) and its link to the master killed,
// so that it reconnects only once thawed.
type Stall func(ctx context.Context) (thaw func() error, err error)

// Revoke stalls the replica for two seconds (stall), then deletes and disables the keys through
// keystore. The test itself waits for nothing: it kills the master as soon as Revoke returns,
// so only keystore's own WAIT (--redis-min-replica-acks acks) stands between the revocations
// and their loss. Without it the master dies while the replica still lacks both, and the
// promoted replica brings the keys back.
func (lm *LastMoment) Revoke(t *testing.T, stall Stall, acks int) {
	t.Helper()
	ctx := context.Background()
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := Platform.WriteKubeconfig(cfg, Platform.AdminKey); err != nil {
		t.Fatal(err)
	}
	thaw, err := stall(ctx)
	if err != nil {
		t.Fatalf("stall the replica: %v", err)
	}
	later := time.AfterFunc(2*time.Second, func() { _ = thaw() })
	t.Cleanup(func() { later.Stop(); _ = thaw() })
	cut := time.Now()
	lm.Deleted.Start()
	RunKubectl(t, cfg, "delete", "ownedaccesskeys", lm.DeletedName)
	lm.Disabled.Start()
	RunKubectl(t, cfg, "patch", "ownedaccesskeys", lm.DisabledName, "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	t.Logf("figures: the delete and the disable returned %s after the replica stalled (keystore --redis-min-replica-acks %d)",
		time.Since(cut).Round(time.Millisecond), acks)
}

// Check runs after the failover, once extauthz serves from the promoted master: the promoted
// master has both revocations, every extauthz replica applied them, and the edge refuses both
// keys (every answer, not eventually).
func (lm *LastMoment) Check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var deletedErr error
	Eventually(t, time.Minute, "the promoted master answers", func() error {
		_, deletedErr = Keys.Get(ctx, lm.DeletedName)
		if deletedErr != nil && !errors.Is(deletedErr, store.ErrNotFound) {
			return deletedErr
		}
		return nil
	})
	if deletedErr == nil {
		t.Errorf("FALSE ALLOW: %s, deleted and acknowledged before the kill, is back on the promoted master", lm.DeletedName)
	}
	if k, err := Keys.Get(ctx, lm.DisabledName); err != nil || !k.Spec.Disabled {
		t.Errorf("FALSE ALLOW: %s, disabled and acknowledged before the kill, is %+v on the promoted master (%v)", lm.DisabledName, k, err)
	}
	at, err := WaitApplied(ctx, time.Minute)
	if err != nil {
		t.Fatalf("extauthz never followed the promoted master's changes: %v", err)
	}
	lm.Deleted.InForce(at)
	lm.Disabled.InForce(at)
	allows := 0
	for range 20 {
		for _, p := range lm.Probes {
			if got, _ := Request(ctx, p); got == 200 {
				allows++
			}
		}
	}
	if allows > 0 {
		t.Errorf("FALSE ALLOW: keys revoked before the kill answered 200 %d times after the failover", allows)
	}
	t.Logf("figures: revoked just before the kill: %d false allows in %d requests after the failover", allows, 20*len(lm.Probes))
}
