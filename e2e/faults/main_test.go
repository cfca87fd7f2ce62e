// Package faults runs the real edge under steady traffic whose right answer is known for every
// request, injects one fault at a time, and counts every answer (package faultload): a false
// allow fails the test, always; unavailability is measured and logged, and bounded only
// generously. docs/reliability.md holds what each fault costs clients.
//
// TestMain starts one platform for the package with Redis behind Sentinel (a master, a replica,
// three Sentinels, all TLS), because the first fault is a Sentinel failover; faults that need
// another Redis shape get their own package.
package faults

import (
	"flag"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

var (
	platform *localdev.Platform
	rdb      redis.UniversalClient
	keys     *store.Store
	client   *http.Client
	kubectl  string
)

// minReplicaAcks is keystore's --redis-min-replica-acks: 1, the promise under test. 0 shows
// the attack the setting defeats (TestSentinelFailover then usually reports a false allow):
// go test ./e2e/faults -run TestSentinelFailover -v -args -min-replica-acks=0
var minReplicaAcks = flag.Int("min-replica-acks", 1, "keystore's --redis-min-replica-acks")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(faultload.Main(m, "faults", localdev.Options{Sentinel: true,
		// Two extauthz replicas behind Envoy's extauthz cluster, as production runs at least two:
		// TestExtAuthzReplicaKilled kills one, TestClockSkew skews both.
		ExtauthzReplicas: 2,
		// Every keystore write waits for the replica (docs/reliability.md), so that a revocation
		// acknowledged before the master dies survives the failover. 10s: TestSentinelFailover
		// cuts the replica off, and it comes back within its once-a-second reconnection.
		KeystoreArgs: []string{"--redis-min-replica-acks", strconv.Itoa(*minReplicaAcks), "--redis-replica-ack-timeout", "10s"}},
		setUp))
}

// setUp keeps the platform and the shared helpers' clients (faultload.Setup) in this package's
// variables too.
func setUp(p *localdev.Platform) error {
	platform = p
	kubectl, client, rdb, keys = faultload.Kubectl, faultload.Client, faultload.RDB, faultload.Keys
	return nil
}
