//go:build soak

package soak

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// A Fault is injected on the soak's schedule: Inject breaks something and returns once the
// platform has recovered from it (the soak then gives the edge a few seconds before it counts
// answers as after recovery again). Inject fails the test (t.Fatal) only when recovery never
// comes.
type Fault struct {
	Name   string
	Inject func(t *testing.T)
}

// faults are the faults the soak knows, run in this order, spread evenly over the run. Another
// fault test's injection belongs here too (a killed extauthz replica, xds or keystore, an
// upstream down, clock skew): one entry each.
var faults = []Fault{
	{Name: "redis-failover", Inject: redisFailover},
}

// chosen are the faults -soak-faults names.
func chosen(t *testing.T) []Fault {
	t.Helper()
	switch *faultsOn {
	case "all":
		return faults
	case "none", "":
		return nil
	}
	var list []Fault
	for _, name := range strings.Split(*faultsOn, ",") {
		found := false
		for _, f := range faults {
			if f.Name == strings.TrimSpace(name) {
				list, found = append(list, f), true
			}
		}
		if !found {
			t.Fatalf("-soak-faults: no fault %q", name)
		}
	}
	return list
}

// redisFailover kills (SIGKILL) the Redis master (with Cluster, the {accesskeys} slot's), waits
// until its replica is promoted, starts the killed node again and waits until it is the new
// master's replica and in sync, so that keystore's writes (which wait for a replica) pass again.
func redisFailover(t *testing.T) {
	ctx := context.Background()
	killed, err := platform.KillRedisMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, "the replica is promoted", func() error {
		if m, err := platform.RedisMaster(ctx); err != nil || m == killed {
			return fmt.Errorf("master %s, %v", m, err)
		}
		return nil
	})
	if err := platform.RestartRedisNode(ctx, killed); err != nil {
		t.Fatal(err)
	}
	if platform.RedisShape() == "cluster" {
		if err := platform.WaitRedisClusterHealthy(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	faultload.Eventually(t, 2*time.Minute, "the old master rejoins as a replica", func() error {
		info, err := faultload.RDB.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("%v %s", err, info)
		}
		return nil
	})
}
