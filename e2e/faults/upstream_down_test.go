package faults

import (
	"context"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// TestUpstreamDown takes one connected cluster's API server off the network (its address
// refuses connections, and every open connection to it is cut) under steady traffic to it and
// to demo, then brings it back on the same address: only that cluster answers 503 meanwhile,
// and only to keys that pass (a key that must be refused is still refused: the check comes
// first); demo answers as before; the cluster serves again with no one touching the edge.
//
// The cluster is staging's API server behind a TCP relay the test owns (faultload.Relay), so
// that it can go away and come back on the same address in milliseconds, as a cluster behind a
// lost network path or a restarted load balancer does, without restarting a kube-apiserver.
func TestUpstreamDown(t *testing.T) {
	ctx := context.Background()
	name := "upstream-" + randomSuffix()
	r := faultload.RelayedCluster(t, name)

	set := faultload.NewKeySet(t)
	others := faultload.StartLoad(set.Probes, 3)
	defer others.Cancel()
	scoped := set.Probes[1].Key // scoped to /version
	down := faultload.StartLoad([]*faultload.Probe{
		{Name: "admin on the downed cluster", Key: platform.AdminKey, Path: faultload.ClusterPath(name) + "/version"},
		{Name: "scoped key out of scope on the downed cluster", Key: scoped, Path: faultload.ClusterPath(name) + "/api", Refuse: true},
		{Name: "unknown key on the downed cluster", Key: "unknown-" + randomSuffix(), Path: faultload.ClusterPath(name) + "/version", Refuse: true},
	}, 1)
	defer down.Cancel()
	others.WaitFor(t, 200)
	down.WaitFor(t, 50)

	down.Phase.Store(int32(faultload.Faulted))
	others.Phase.Store(int32(faultload.Faulted))
	downAt := time.Now()
	r.Down()
	down.WaitFor(t, 100)
	others.WaitFor(t, 200)

	upAt := time.Now()
	if err := r.Up(); err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, name+" serves again by itself", func() error { return faultload.ClusterAnswers(ctx, name, 200) })
	recovered503 := time.Since(upAt)
	down.Phase.Store(int32(faultload.Recovered))
	others.Phase.Store(int32(faultload.Recovered))
	down.WaitFor(t, 50)
	others.WaitFor(t, 200)
	others.Stop(t)
	down.Stop(t)

	otherUnavailable := others.Counts()[faultload.Faulted][faultload.Unavailable]
	if otherUnavailable > 0 {
		t.Errorf("%d answers on demo were 503 while another cluster was down", otherUnavailable)
	}
	downCounts := down.Counts()
	downUnavailable, downAnswers := downCounts[faultload.Faulted][faultload.Unavailable], 0
	for o := range faultload.Outcomes {
		downAnswers += downCounts[faultload.Faulted][o]
	}
	t.Logf("figures: while down (%s), %d of %d answers on the downed cluster were 503 (the rest: keys refused, as they must be); demo: %d 503s; served again %s after it came back",
		upAt.Sub(downAt).Round(time.Millisecond), downUnavailable, downAnswers, otherUnavailable, recovered503.Round(time.Millisecond))
}
