//go:build soak

// Package soak runs the platform for a long while (`make soak`: 30 minutes) at half the load
// it was measured to sustain, with key churn through keystore's API (creates, disables,
// deletes, logins and logouts) and faults on a schedule, and samples every component each
// minute: memory (RSS), goroutines, open file descriptors, and Redis's used_memory. It fails on
// any false allow and on growth beyond noise (growth.go). Its files carry the build tag soak,
// so `go test ./...` (make test) never builds it.
//
// docs/reliability.md ("Soak") holds the tables of two runs.
package soak

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "keygate-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	progress := io.Discard
	if testing.Verbose() {
		progress = os.Stderr
	}
	opts := localdev.Options{Dir: dir, Progress: progress,
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
		return 1
	}
	platform, err = localdev.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: cannot start the platform (`make tools` installs Envoy, Redis and the rest): %v\n(logs in %s)\n", err, filepath.Join(dir, "logs"))
		return 1
	}
	defer platform.Stop()
	if err := faultload.Setup(platform); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if code := m.Run(); code != 0 {
		fmt.Fprintf(os.Stderr, "soak: component logs are in %s (kept because the soak failed)\n", filepath.Join(dir, "logs"))
		return code
	}
	platform.Stop()
	os.RemoveAll(dir)
	return 0
}
