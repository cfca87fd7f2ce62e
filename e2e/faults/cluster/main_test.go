// Package cluster runs the fault tests that need Redis as a Redis Cluster (six TLS nodes: three
// masters, three replicas, created with redis-cli --cluster create): the traffic and its
// classification are e2e/faults/faultload's, as for the Sentinel failover in e2e/faults.
package cluster

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/localdev"
)

var platform *localdev.Platform

// minReplicaAcks is keystore's --redis-min-replica-acks: 1, the promise under test (WAIT on the
// master of the {accesskeys} slot). 0 shows the attack it defeats:
// go test ./e2e/faults/cluster -run TestClusterFailover -v -args -min-replica-acks=0
var minReplicaAcks = flag.Int("min-replica-acks", 1, "keystore's --redis-min-replica-acks")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(faultload.Main(m, "faults-cluster", localdev.Options{RedisCluster: true,
		KeystoreArgs: []string{"--redis-min-replica-acks", strconv.Itoa(*minReplicaAcks), "--redis-replica-ack-timeout", "10s"}},
		func(p *localdev.Platform) error { platform = p; return nil }))
}
