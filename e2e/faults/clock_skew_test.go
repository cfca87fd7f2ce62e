package faults

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	"github.com/keygate-dev/keygate/localdev"
)

// skew is how far each extauthz replica's clock is off in TestClockSkew: one ahead, one behind.
const skew = time.Minute

// TestClockSkew runs the two extauthz replicas with clocks a minute ahead and a minute behind
// (extauthz --testing-clock-offset, the clock its decisions already take) and sends requests
// with keys whose expiry, by the true clock (the one that stamped their creation, as keystore's
// does), is 90 s and 30 s past and 30 s and 90 s ahead, counted from creation (ttl) and from
// the last use (ttlAfterLastActivity). The documented bound: an expiry decision is off by the
// deciding replica's skew and no more. So a key 90 s past its expiry is always refused and one
// 90 s before it always passes; within the skew, both answers are right, and the test shows
// that both happen, that is, that skew passes straight into the decision. A use stamped by the
// replica ahead is at most the skew in the future.
func TestClockSkew(t *testing.T) {
	ctx := context.Background()
	if n := platform.ExtAuthzReplicas(); n != 2 {
		t.Fatalf("the platform runs %d extauthz replicas, want 2", n)
	}
	offsets := []time.Duration{skew, -skew}
	for i, off := range offsets {
		faultload.SkewReplica(t, i, off)
	}
	t.Cleanup(func() {
		for i := range offsets {
			faultload.SkewReplica(t, i, 0)
		}
	})
	for i := range offsets {
		faultload.WaitReplicaChecks(t, i)
	}

	keysByExpiry := faultload.ExpiringKeys(t, time.Now(), skew, []time.Duration{-90 * time.Second, -30 * time.Second, 30 * time.Second, 90 * time.Second}, true)
	answers := map[string]map[int]int{}
	// Each key's requests in a row: Envoy's round robin then alternates the replicas for it.
	for _, k := range keysByExpiry {
		answers[k.Name] = map[int]int{}
		for range 20 {
			sent := time.Now()
			status, detail := faultload.Request(ctx, k.Probe)
			answers[k.Name][status]++
			switch o := faultload.Classify(k.Want(sent, time.Now()), status); o {
			case faultload.FalseAllow, faultload.FalseDeny, faultload.OtherAnswer:
				t.Errorf("%s: %s, %d %s", k.Name, faultload.OutcomeNames[o], status, detail)
			}
		}
	}
	for _, k := range keysByExpiry {
		t.Logf("figures: %s: %v", k.Name, answers[k.Name])
	}
	// Within the skew both answers come, one from each replica: the skew decides.
	for _, name := range []string{"ttl, expired 30s ago", "ttl, expires in 30s"} {
		if a := answers[name]; a[http.StatusOK] == 0 || a[http.StatusUnauthorized] == 0 {
			t.Errorf("%s: answers %v, want both 200 (the replica behind) and 401 (the replica ahead): is the clock offset applied?", name, a)
		}
	}
	checkActivityStamp(t, keysByExpiry)
}

// checkActivityStamp: the last use of the idle key that always passes, as stored after the next
// flush, is at most the skew ahead of the true clock, and ahead of it: the replica ahead
// stamped it, so the key lives up to the skew longer than its ttl after that use.
func checkActivityStamp(t *testing.T, ks []faultload.ExpiringKey) {
	t.Helper()
	var k faultload.ExpiringKey
	for _, c := range ks {
		if c.Idle && c.Want(time.Now(), time.Now()) == faultload.MustAllow {
			k = c
		}
	}
	time.Sleep(3 * localdev.ActivityFlushInterval)
	stored, err := keys.Get(context.Background(), k.Object)
	if err != nil || stored.Status.LastActivity == nil {
		t.Fatalf("%s: %+v, %v", k.Name, stored, err)
	}
	ahead := stored.Status.LastActivity.Sub(time.Now())
	t.Logf("figures: %s: last use stored %s ahead of the true clock", k.Name, ahead.Round(time.Second))
	if ahead > skew+time.Second {
		t.Errorf("%s: last use stamped %s ahead, more than the skew of %s", k.Name, ahead, skew)
	}
	if ahead <= 0 {
		t.Errorf("%s: last use stamped %s ahead: the replica ahead did not stamp it", k.Name, ahead)
	}
}
