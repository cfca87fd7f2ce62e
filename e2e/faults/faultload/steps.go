package faultload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RevokeThroughKeystore deletes one key and disables another with kubectl through the edge's
// management API (keystore serve, which must have followed any new master), waits until every
// extauthz replica applied both (from then on a pass is a false allow) and the edge refused both.
func RevokeThroughKeystore(t *testing.T, set *KeySet) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "kubeconfig")
	if err := Platform.WriteKubeconfig(cfg, Platform.AdminKey); err != nil {
		t.Fatal(err)
	}
	set.Deleted.Start()
	RunKubectl(t, cfg, "delete", "ownedaccesskeys", set.DeletedName)
	deleted := time.Now()
	set.Disabled.Start()
	RunKubectl(t, cfg, "patch", "ownedaccesskeys", set.DisabledName, "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	disabled := time.Now()
	at, err := WaitApplied(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatalf("the revocations never reached every extauthz replica: %v", err)
	}
	set.Deleted.InForce(at)
	set.Disabled.InForce(at)
	for what, r := range map[string]*Revocation{"deleted": set.Deleted, "disabled": set.Disabled} {
		Eventually(t, 30*time.Second, "the edge refuses the "+what+" key", func() error {
			if r.RefusedAt().IsZero() {
				return fmt.Errorf("not refused yet")
			}
			return nil
		})
	}
	t.Logf("figures: revocations after the failover refused by the edge %s (delete) and %s (disable) after kubectl returned",
		set.Deleted.RefusedAt().Sub(deleted).Round(time.Millisecond), set.Disabled.RefusedAt().Sub(disabled).Round(time.Millisecond))
}

// RunKubectl runs kubectl with the kubeconfig cfg against keystore's management API (context
// loft-management), failing the test if it fails.
func RunKubectl(t *testing.T, cfg string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Kubectl, append([]string{"--kubeconfig", cfg, "--context", "loft-management"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out.String())
	}
}

// WantStatus sends p once and says how its answer differs from status.
func WantStatus(ctx context.Context, p *Probe, status int) error {
	if got, detail := Request(ctx, p); got != status {
		return fmt.Errorf("%s: %d %s, want %d", p.Name, got, detail, status)
	}
	return nil
}

// Eventually polls f until it returns nil, failing the test after within: a bound on a hung
// run, far above what any step needs, never a measurement.
func Eventually(t *testing.T, within time.Duration, what string, f func() error) {
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
