//go:build soak

// Package soak runs the platform for a long while (`make soak`: 30 minutes) at half the load
// it was measured to sustain, with key churn through keystore's API (creates, disables,
// deletes, logins and logouts) and faults on a schedule, and samples every component each
// minute: memory (RSS), goroutines, open file descriptors, and Redis's used_memory. It fails on
// any false allow and on growth beyond noise (growth.go). The faults (faults_test.go) are one of
// each fault test of e2e/faults made an event: a Redis failover, an extauthz replica, xds and
// keystore killed and started again, a cluster taken off the network and brought back, and an
// extauthz replica's clock a minute ahead, then behind. Its files carry the build tag soak, so
// `go test ./...` (make test) never builds it; add -race to its go test line to check the
// harness itself.
//
// docs/reliability.md ("Soak") holds the tables of two runs.
package soak

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/localdev"
)

var (
	platform *localdev.Platform

	duration = flag.Duration("soak-duration", 30*time.Minute, "how long the soak runs after the load is measured")
	sample   = flag.Duration("soak-sample", time.Minute, "how often every component is measured")
	fraction = flag.Float64("soak-load", 0.5, "the load, as a fraction of the measured maximum")
	rps      = flag.Float64("soak-rps", 0, "the load in requests a second, instead of measuring (0: measure)")
	measure  = flag.Duration("soak-measure", 20*time.Second, "how long the maximum load is measured")
	faultsOn = flag.String("soak-faults", "all", "the faults to inject, comma-separated names (faults.go), all, or none")
	shape    = flag.String("soak-redis", "sentinel", "Redis: sentinel or cluster")
)

func TestMain(m *testing.M) {
	flag.Parse()
	opts := localdev.Options{
		// Two extauthz replicas, as production runs at least two: the extauthz-kill fault kills
		// one and the edge goes on through the other.
		ExtauthzReplicas: 2,
		// As in the fault tests: every keystore write waits for a replica, so that no revocation
		// is lost to a failover.
		KeystoreArgs: []string{"--redis-min-replica-acks", "1", "--redis-replica-ack-timeout", "10s"}}
	switch *shape {
	case "sentinel":
		opts.Sentinel = true
	case "cluster":
		opts.RedisCluster = true
	default:
		fmt.Fprintf(os.Stderr, "soak: -soak-redis %q: want sentinel or cluster\n", *shape)
		os.Exit(1)
	}
	os.Exit(faultload.Main(m, "soak", opts, func(p *localdev.Platform) error { platform = p; return nil }))
}
