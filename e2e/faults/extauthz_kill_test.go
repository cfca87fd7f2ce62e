package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// TestExtAuthzReplicaKilled kills one of the two extauthz replicas (SIGKILL) under steady
// traffic, revokes two keys through keystore while it is down, and starts it again. Envoy
// retries a check that could not reach the dead replica on the other one (the ext_authz
// filter's retry policy, xds/translate's extAuthzRetry), and outlier detection ejects the dead
// replica after five failed checks in a row; the gRPC health check lets it back once it answers.
// No false allow ever; 503s while the replica is dead are counted and must stay a small share.
func TestExtAuthzReplicaKilled(t *testing.T) {
	ctx := context.Background()
	if n := platform.ExtAuthzReplicas(); n < 2 {
		t.Fatalf("the platform runs %d extauthz replicas, want 2 (localdev.Options.ExtauthzReplicas)", n)
	}
	const victim = 1
	set := faultload.NewKeySet(t)
	l := faultload.StartLoad(set.Probes, 4)
	defer l.Cancel()
	l.WaitFor(t, 300)
	before := envoyCounters(t, "cluster.extauthz.")

	l.Phase.Store(int32(faultload.Faulted))
	killedAt := time.Now()
	if err := platform.KillExtAuthzReplica(victim); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := platform.StartExtAuthzReplica(context.Background(), victim); err != nil {
				t.Errorf("restart extauthz replica %d: %v", victim, err)
			}
		}
	})
	l.WaitFor(t, 300)
	// Revocations reach the surviving replica as they would both.
	faultload.RevokeThroughKeystore(t, set)
	l.WaitFor(t, 200)
	during := envoyCounters(t, "cluster.extauthz.")

	if err := platform.StartExtAuthzReplica(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restarted = true
	startedAt := time.Now()
	back := faultload.ReplicaChecks(victim)
	faultload.Eventually(t, time.Minute, "Envoy sends checks to the restarted replica again", func() error {
		if n := faultload.ReplicaChecks(victim); n <= back {
			return fmt.Errorf("%d checks", n)
		}
		return nil
	})
	rejoined := time.Since(startedAt)
	after := envoyCounters(t, "cluster.extauthz.")
	l.Phase.Store(int32(faultload.Recovered))
	l.WaitFor(t, 300)
	l.Stop(t)

	counts := l.Counts()
	unavail, answered := counts[faultload.Faulted][faultload.Unavailable], 0
	for o := range faultload.Outcomes {
		answered += counts[faultload.Faulted][o]
	}
	last503 := "none"
	if last := l.LastUnavailable(); !last.IsZero() {
		last503 = last.Sub(killedAt).Round(time.Millisecond).String() + " after the kill"
	}
	t.Logf("figures: %d of %d answers while the replica was down were 503 (last: %s); the restarted replica got checks again %s after its start",
		unavail, answered, last503, rejoined.Round(time.Millisecond))
	for _, c := range []string{"upstream_rq_retry", "upstream_rq_retry_success", "upstream_rq_retry_overflow", "upstream_cx_connect_fail",
		"outlier_detection.ejections_enforced_total", "health_check.failure"} {
		t.Logf("figures: Envoy cluster.extauthz.%s: +%d during the kill", c, during["cluster.extauthz."+c]-before["cluster.extauthz."+c])
	}
	for _, c := range []string{"health_check.attempt", "health_check.success", "health_check.failure", "health_check.network_failure",
		"outlier_detection.ejections_enforced_total", "outlier_detection.ejections_active", "membership_healthy"} {
		t.Logf("figures: Envoy cluster.extauthz.%s: %d before the kill, %d while down, %d once back", c,
			before["cluster.extauthz."+c], during["cluster.extauthz."+c], after["cluster.extauthz."+c])
	}
	// Generous: with the retries, none is expected; without them every other check fails
	// until the ejection, and a tenth is far above the first and far below the second.
	if answered > 0 && unavail*10 > answered {
		t.Errorf("%d of %d answers while a replica was down were 503: the other replica should have taken its checks", unavail, answered)
	}
}

// envoyCounters reads the edge Envoy's stats whose names start with prefix.
func envoyCounters(t *testing.T, prefix string) map[string]int64 {
	t.Helper()
	stats, err := platform.EnvoyStats("^" + strings.ReplaceAll(prefix, ".", `\.`))
	if err != nil {
		t.Fatal(err)
	}
	return stats
}
