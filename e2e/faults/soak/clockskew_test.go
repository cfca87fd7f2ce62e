//go:build soak

package soak

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
)

// skewHold is how long clock-skew keeps each offset of extauthz replica 1's clock.
const skewHold = 15 * time.Second

// skewedReplica is the extauthz replica whose clock clock-skew moves.
const skewedReplica = 1

// clockSkew restarts extauthz replica 1 with its clock a minute ahead (extauthz
// --testing-clock-offset, the clock its decisions and last-use stamps take), then a minute
// behind, each for skewHold, then on time again, and returns once the edge serves. The other
// replica keeps the true clock, so that Envoy's round robin sends each key to both.
func clockSkew(t *testing.T) {
	for _, off := range []time.Duration{time.Minute, -time.Minute} {
		skewedWindow(t, off)
	}
	faultload.SkewReplica(t, skewedReplica, 0)
	edgeServes(t)
}

// skewedWindow runs the skewed replica with its clock off by off for skewHold. Keys whose ttl
// ends 90 s and 30 s before and after now by the true clock get a light load of their own (40
// requests a second) besides the soak's, every answer classified with the documented bound: an
// expiry decision is off by the deciding replica's skew and no more (extauthz/README.md,
// "Clocks"; faultload.Probe.Skew), so a 200 for a key more than a minute past its expiry is a
// false allow, and fails the run. The key within the skew on the skewed side (30 s before its
// expiry with the clock ahead, 30 s after with it behind) must get both answers: the offset
// applies. (Keys that expire by ttlAfterLastActivity are TestClockSkew's: under a steady load,
// a use the replica behind allows after the true expiry renews such a key, as documented, so its
// expiry does not stay put.)
func skewedWindow(t *testing.T, off time.Duration) {
	t.Helper()
	faultload.SkewReplica(t, skewedReplica, off)
	faultload.WaitReplicaChecks(t, skewedReplica)
	ks := faultload.ExpiringKeys(t, time.Now(), off.Abs(), []time.Duration{-90 * time.Second, -30 * time.Second, 30 * time.Second, 90 * time.Second}, false)
	var probes []*faultload.Probe
	for _, k := range ks {
		probes = append(probes, k.Probe)
	}
	within := ks[2] // expires in 30 s: the replica ahead refuses it
	if off < 0 {
		within = ks[1] // expired 30 s ago: the replica behind lets it pass
	}
	l := faultload.StartLoadRate(probes, 2, 40)
	l.Phase.Store(int32(faultload.Faulted))
	time.Sleep(skewHold)
	l.Halt()
	counts, both := l.Counts()[faultload.Faulted], l.ProbeStatuses(within.Probe)
	answers := 0
	for _, n := range counts {
		answers += n
	}
	note("clock %s: %d answers for expiring keys, %d false allows, %d 503; %q: %d × 200, %d × 401",
		signed(off), answers, counts[faultload.FalseAllow], counts[faultload.Unavailable], within.Name, both[http.StatusOK], both[http.StatusUnauthorized])
	for _, w := range l.Wrong() {
		t.Logf("clock-skew, clock %s: wrong answer: %s", signed(off), w)
	}
	if counts[faultload.FalseAllow] > 0 {
		t.Errorf("clock-skew: %d false allows for keys past their expiry by more than the skew (clock %s)", counts[faultload.FalseAllow], signed(off))
	}
	if both[http.StatusOK] == 0 || both[http.StatusUnauthorized] == 0 {
		t.Errorf("clock-skew: %s got %v with replica %d's clock %s, want both 200 and 401: is the offset applied?", within.Name, both, skewedReplica, signed(off))
	}
}

// signed is d with its sign, +1m0s or -1m0s.
func signed(d time.Duration) string {
	if d > 0 {
		return "+" + d.String()
	}
	return d.String()
}
