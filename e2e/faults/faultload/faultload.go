// Package faultload is the traffic of the fault tests (e2e/faults and the packages beside it
// that need another Redis shape): steady requests through the real edge whose right answer is
// known for every request, every answer classified (traffic.go), a false allow always a
// failure; and what the faults need beside the platform's own kill and restart: a TCP relay
// that takes a cluster off the network (relay.go, targets.go), keys that expire around now and
// replicas with a skewed clock (expiring.go, replicas.go).
//
// The helpers work on one platform, set with Setup in the test package's TestMain; they fail the
// test that calls them (t.Fatalf) rather than return errors, as test helpers do.
package faultload

import (
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// The platform under test and its clients, set by Setup.
var (
	Platform *localdev.Platform
	// Client trusts the edge's CA.
	Client *http.Client
	// RDB is a client of the platform's Redis, whatever its shape (standalone, Sentinel,
	// Cluster); Keys the access key store on it, as keystore writes it.
	RDB  redis.UniversalClient
	Keys *store.Store
	// Kubectl is the kubectl binary, for changes through keystore's management API.
	Kubectl string
)

// Setup points the helpers at p. Call it once, from TestMain, after localdev.Start.
func Setup(p *localdev.Platform) error {
	var err error
	Platform = p
	if Kubectl, err = toolbin.Path("kubectl"); err != nil {
		return err
	}
	if Client, err = p.HTTPClient(); err != nil {
		return err
	}
	if RDB, err = p.RedisClient(); err != nil {
		return err
	}
	Keys = store.New(RDB)
	return nil
}
