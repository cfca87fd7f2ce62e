package faults

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"

	"github.com/keygate-dev/keygate/localdev"
)

// TestXDSKilledDuringTargetChanges kills xds (SIGKILL) under steady traffic, changes the
// targets while it is down (one cluster added, one removed), and starts it again: Envoy keeps
// serving its last configuration meanwhile (not one 503, the removed target still served, the
// added one not yet), and both changes arrive once xds is back, without restarting Envoy.
// (xds/app's TestXDSRestartUnderLoad shows the same against xds alone; this is the whole edge.)
func TestXDSKilledDuringTargetChanges(t *testing.T) {
	ctx := context.Background()
	suffix := randomSuffix()
	removed, added := "xds-removed-"+suffix, "xds-added-"+suffix
	staging := platform.Clusters[localdev.ClusterStaging]
	faultload.EditTargets(t, func(d *localdev.Targets) { d.Clusters = append(d.Clusters, platform.ClusterTarget(removed, staging)) })
	t.Cleanup(func() {
		faultload.EditTargets(t, func(d *localdev.Targets) { d.Clusters = faultload.DropCluster(d.Clusters, removed, added) })
	})
	faultload.Eventually(t, time.Minute, "the edge serves "+removed, func() error { return faultload.ClusterAnswers(ctx, removed, 200) })

	set := faultload.NewKeySet(t)
	l := faultload.StartLoad(set.Probes, 4)
	defer l.Cancel()
	// The cluster removed while xds is down has a load of its own: it must pass until xds is
	// back, and 404 is its right answer after, which the load does not know.
	lr := faultload.StartLoad([]*faultload.Probe{{Name: "the cluster removed while xds is down", Key: platform.AdminKey, Path: faultload.ClusterPath(removed) + "/version"}}, 1)
	defer lr.Cancel()
	l.WaitFor(t, 300)
	uptime := envoyCounters(t, "server.uptime")["server.uptime"]

	l.Phase.Store(int32(faultload.Faulted))
	lr.Phase.Store(int32(faultload.Faulted))
	if err := platform.KillXDS(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := platform.StartXDS(context.Background()); err != nil {
				t.Errorf("restart xds: %v", err)
			}
		}
	})
	faultload.EditTargets(t, func(d *localdev.Targets) {
		d.Clusters = append(faultload.DropCluster(d.Clusters, removed), platform.ClusterTarget(added, staging))
	})
	l.WaitFor(t, 300)
	if err := faultload.ClusterAnswers(ctx, added, 404); err != nil {
		t.Fatalf("with xds down: %v: the test does not test a restart", err)
	}

	lr.Stop(t)
	lc := lr.Counts()[faultload.Faulted]
	removedWrong := lc[faultload.FalseDeny] + lc[faultload.Unavailable] + lc[faultload.OtherAnswer]
	if removedWrong > 0 {
		t.Errorf("the cluster removed while xds was down failed %d times before xds was back: Envoy should serve its last configuration", removedWrong)
	}
	startedAt := time.Now()
	if err := platform.StartXDS(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	faultload.Eventually(t, time.Minute, "the cluster added while xds was down is served", func() error { return faultload.ClusterAnswers(ctx, added, 200) })
	addedAfter := time.Since(startedAt)
	faultload.Eventually(t, time.Minute, "the cluster removed while xds was down is gone", func() error { return faultload.ClusterAnswers(ctx, removed, 404) })
	removedAfter := time.Since(startedAt)
	l.Phase.Store(int32(faultload.Recovered))
	l.WaitFor(t, 300)
	l.Stop(t)

	if now := envoyCounters(t, "server.uptime")["server.uptime"]; now < uptime {
		t.Errorf("Envoy restarted during the test (uptime %ds, was %ds)", now, uptime)
	}
	counts := l.Counts()
	unavail := counts[faultload.Faulted][faultload.Unavailable] + counts[faultload.Recovered][faultload.Unavailable]
	if unavail > 0 {
		t.Errorf("%d answers were 503 while xds was down or catching up: Envoy should serve its last configuration", unavail)
	}
	t.Logf("figures: %d 503s with xds down; after its start the added cluster was served in %s and the removed one gone in %s",
		unavail, addedAfter.Round(time.Millisecond), removedAfter.Round(time.Millisecond))
}

// randomSuffix makes names of this run's objects unique.
func randomSuffix() string { return strings.ToLower(rand.Text()[:8]) }
