//go:build soak

package soak

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// A Fault is injected on the soak's schedule: Inject breaks something and returns once the
// platform has recovered from it (the soak then gives the edge a few seconds before it counts
// answers as after recovery again). Inject fails the test (t.Fatal) when recovery never comes,
// and (t.Error) when probes of its own get a false allow; what else it measured it adds to its
// line of the report with note.
type Fault struct {
	Name   string
	Inject func(t *testing.T)
	// Prepare, when set, runs at the soak's start, before the load is measured: the probes it
	// returns join the load for the whole run (upstream-down's cluster behind a relay), and the
	// report counts their 503s during the fault apart.
	Prepare func(t *testing.T, set *faultload.KeySet) []*faultload.Probe
	probes  []*faultload.Probe // what Prepare returned
}

// faults are the faults the soak knows, run in this order, spread evenly over the run: one
// entry per fault test of e2e/faults, each made an event that starts and ends. Clock skew is
// one for a while: extauthz replica 1 runs a minute ahead, then a minute behind, then on time
// again (clockskew_test.go); an upstream down is a cluster behind a relay taken off the network
// and brought back (upstream_test.go).
var faults = []Fault{
	{Name: "redis-failover", Inject: redisFailover},
	{Name: "extauthz-kill", Inject: extauthzKill},
	{Name: "xds-restart", Inject: xdsRestart},
	{Name: "keystore-kill", Inject: keystoreKill},
	{Name: "upstream-down", Inject: upstreamDown, Prepare: prepareUpstream},
	{Name: "clock-skew", Inject: clockSkew},
	{Name: "data-loss", Inject: lost.inject},
}

// notes are what the fault being injected adds to its line of the report (note).
var notes struct {
	sync.Mutex
	lines []string
}

// note adds a figure to the report line of the fault being injected.
func note(format string, args ...any) {
	notes.Lock()
	defer notes.Unlock()
	notes.lines = append(notes.lines, fmt.Sprintf(format, args...))
}

// takeNotes returns the notes so far, joined, and forgets them.
func takeNotes() string {
	notes.Lock()
	defer notes.Unlock()
	s := strings.Join(notes.lines, "; ")
	notes.lines = nil
	return s
}

// down is how long a killed component stays down before it is started again: long enough for
// Envoy's connections to it to fail and for clients to notice.
const down = 5 * time.Second

// chosen are the faults -soak-faults names.
func chosen(t *testing.T) []Fault {
	t.Helper()
	switch *faultsOn {
	case "all":
		return slices.Clone(faults)
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

// extauthzKill kills (SIGKILL) the second of the two extauthz replicas, starts it again after
// down and returns once it is ready and the edge answers the admin key. The edge keeps answering
// through the other replica meanwhile.
func extauthzKill(t *testing.T) {
	const victim = 1
	restart(t, "extauthz replica 1", func() error { return platform.KillExtAuthzReplica(victim) },
		func(ctx context.Context) error { return platform.StartExtAuthzReplica(ctx, victim) })
	edgeServes(t)
}

// xdsRestart kills (SIGKILL) xds, starts it again after down and returns once it is ready and the
// edge answers the admin key: Envoy keeps its last configuration meanwhile.
func xdsRestart(t *testing.T) {
	restart(t, "xds", platform.KillXDS, platform.StartXDS)
	edgeServes(t)
}

// keystoreKill kills (SIGKILL) `keystore serve`, starts it again after down and returns once the
// management API answers through the edge. Churn's writes answer 503 meanwhile; checks at the
// edge (extauthz and Redis) go on.
func keystoreKill(t *testing.T) {
	restart(t, "keystore", platform.KillKeystore, platform.StartKeystore)
	faultload.Eventually(t, time.Minute, "the management API answers", func() error {
		if status, body := call(context.Background(), platform.AdminKey, http.MethodGet, accessKeysPath, "", nil); status != http.StatusOK {
			return fmt.Errorf("%d %.200s", status, body)
		}
		return nil
	})
}

// restart kills what, waits down and starts it again; it fails the test if either fails.
func restart(t *testing.T, what string, kill func() error, start func(context.Context) error) {
	t.Helper()
	if err := kill(); err != nil {
		t.Fatalf("kill %s: %v", what, err)
	}
	time.Sleep(down)
	if err := start(context.Background()); err != nil {
		t.Fatalf("start %s again: %v", what, err)
	}
}

// edgeServes waits until the edge answers the admin key on the demo cluster.
func edgeServes(t *testing.T) {
	t.Helper()
	p := &faultload.Probe{Name: "admin key", Key: platform.AdminKey, Path: faultload.DemoPath + "/version"}
	faultload.Eventually(t, time.Minute, "the edge answers the admin key", func() error {
		return faultload.WantStatus(context.Background(), p, 200)
	})
}
