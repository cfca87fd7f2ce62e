//go:build soak

package soak

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// upstreamOutage is how long upstream-down keeps its cluster off the network.
const upstreamOutage = 20 * time.Second

// relayed is the cluster upstream-down takes off the network: staging's API server behind a
// TCP relay (faultload.RelayedCluster), added at the soak's start, as TestUpstreamDown does.
var relayed struct {
	name  string
	relay *faultload.Relay
}

// prepareUpstream adds the relayed cluster and returns its probes for the load: a key that
// must pass, and the scoped key out of its scope, which must be refused whether the cluster is
// up or not (the check comes before the upstream).
func prepareUpstream(t *testing.T, set *faultload.KeySet) []*faultload.Probe {
	t.Helper()
	relayed.name = "soak-upstream-" + strings.ToLower(rand.Text()[:8])
	relayed.relay = faultload.RelayedCluster(t, relayed.name)
	path := faultload.ClusterPath(relayed.name)
	return []*faultload.Probe{
		{Name: "allowed on the relayed cluster", Key: set.Probes[0].Key, Path: path + "/version"},
		{Name: "scoped, out of scope on the relayed cluster", Key: set.Probes[1].Key, Path: path + "/api", Refuse: true},
	}
}

// upstreamDown takes the relayed cluster off the network for upstreamOutage (its address
// refuses connections, open ones are cut), brings it back on the same address, and returns once
// the edge serves it again, which it must do with no one touching the edge. Meanwhile its
// allowed key gets 503 (unavailable), its refused key must stay refused, and every other
// target must answer as before: the report counts the 503s on it apart.
func upstreamDown(t *testing.T) {
	relayed.relay.Down()
	time.Sleep(upstreamOutage)
	upAt := time.Now()
	if err := relayed.relay.Up(); err != nil {
		t.Fatalf("the relay cannot listen again: %v", err)
	}
	faultload.Eventually(t, time.Minute, relayed.name+" serves again by itself", func() error {
		return faultload.ClusterAnswers(context.Background(), relayed.name, 200)
	})
	note("off the network %s; served again %s after it came back", upstreamOutage, time.Since(upAt).Round(time.Millisecond))
}
