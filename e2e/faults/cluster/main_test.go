// Package cluster runs the fault tests that need Redis as a Redis Cluster (six TLS nodes: three
// masters, three replicas, created with redis-cli --cluster create): the traffic and its
// classification are e2e/faults/faultload's, as for the Sentinel failover in e2e/faults.
package cluster

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/localdev"
)

var platform *localdev.Platform

// minReplicaAcks is keystore's --redis-min-replica-acks: 1, the promise under test (WAIT on the
// master of the {accesskeys} slot). 0 shows the attack it defeats:
// go test ./e2e/faults/cluster -run TestClusterFailover -v -args -min-replica-acks=0
var minReplicaAcks = flag.Int("min-replica-acks", 1, "keystore's --redis-min-replica-acks")

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "keygate-faults-cluster-")
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
	platform, err = localdev.Start(ctx, localdev.Options{Dir: dir, Progress: progress, RedisCluster: true,
		KeystoreArgs: []string{"--redis-min-replica-acks", strconv.Itoa(*minReplicaAcks), "--redis-replica-ack-timeout", "10s"}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults/cluster: cannot start the platform (`make tools` installs Envoy, Redis and the rest): %v\n(logs in %s)\n", err, filepath.Join(dir, "logs"))
		return 1
	}
	defer platform.Stop()
	if err := faultload.Setup(platform); err != nil {
		fmt.Fprintln(os.Stderr, "faults/cluster:", err)
		return 1
	}
	if code := m.Run(); code != 0 {
		fmt.Fprintf(os.Stderr, "faults/cluster: component logs are in %s (kept because tests failed)\n", filepath.Join(dir, "logs"))
		return code
	}
	platform.Stop()
	os.RemoveAll(dir)
	return 0
}
