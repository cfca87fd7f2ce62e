package faults

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
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
		restartReplica(t, i, "--testing-clock-offset", off.String())
	}
	t.Cleanup(func() {
		for i := range offsets {
			restartReplica(t, i)
		}
	})
	waitBothReplicasCheck(t)

	now := time.Now()
	keysByExpiry := skewedKeys(t, now)
	answers := map[string]map[int]int{}
	// Each key's requests in a row: Envoy's round robin then alternates the replicas for it.
	for _, k := range keysByExpiry {
		for range 20 {
			status, detail := faultload.Request(ctx, &faultload.Probe{Name: k.name, Key: k.key, Path: faultload.DemoPath + "/version"})
			if answers[k.name] == nil {
				answers[k.name] = map[int]int{}
			}
			answers[k.name][status]++
			switch o := faultload.Classify(k.want(time.Now()), status); o {
			case faultload.FalseAllow, faultload.FalseDeny, faultload.OtherAnswer:
				t.Errorf("%s: %s, %d %s", k.name, faultload.OutcomeNames[o], status, detail)
			}
		}
	}
	for _, k := range keysByExpiry {
		t.Logf("figures: %s: %v", k.name, answers[k.name])
	}
	// Within the skew both answers come, one from each replica: the skew decides.
	for _, name := range []string{"ttl, expired 30s ago", "ttl, expires in 30s"} {
		if a := answers[name]; a[http.StatusOK] == 0 || a[http.StatusUnauthorized] == 0 {
			t.Errorf("%s: answers %v, want both 200 (the replica behind) and 401 (the replica ahead): is the clock offset applied?", name, a)
		}
	}
	checkActivityStamp(t, keysByExpiry)
}

// skewedKey is a key whose expiry by the true clock is expiry.
type skewedKey struct {
	name, key string
	object    string // its name in the store
	expiry    time.Time
	idle      bool // ttlAfterLastActivity
}

// want is the right answer at sent: refused once the expiry is more than the skew past, allowed
// while it is more than the skew ahead, either in between.
func (k skewedKey) want(sent time.Time) faultload.Want {
	switch {
	case sent.After(k.expiry.Add(skew)):
		return faultload.MustRefuse
	case sent.Before(k.expiry.Add(-skew)):
		return faultload.MustAllow
	}
	return faultload.EitherWay
}

// skewedKeys makes keys expiring 90 s and 30 s before now and 30 s and 90 s after, by ttl and
// by ttlAfterLastActivity, stamping creation and last use directly in the store.
func skewedKeys(t *testing.T, now time.Time) []skewedKey {
	t.Helper()
	now = now.Truncate(time.Second)
	var out []skewedKey
	for _, d := range []int{-90, -30, 30, 90} {
		when := fmt.Sprintf("expires in %ds", d)
		if d < 0 {
			when = fmt.Sprintf("expired %ds ago", -d)
		}
		// ttl: created an hour ago, living an hour and d seconds.
		created := now.Add(-time.Hour)
		k := skewedKey{name: "ttl, " + when, expiry: now.Add(time.Duration(d) * time.Second)}
		k.object, k.key = createAt(t, created, v1.OwnedAccessKeySpec{User: localdev.AdminUser, TTL: 3600 + int64(d)})
		out = append(out, k)
		// ttlAfterLastActivity: ten minutes from a use 600-d seconds ago.
		k = skewedKey{name: "ttlAfterLastActivity, " + when, expiry: now.Add(time.Duration(d) * time.Second), idle: true}
		k.object, k.key = createAt(t, created, v1.OwnedAccessKeySpec{User: localdev.AdminUser, TTL: 600, TTLAfterLastActivity: true})
		if err := keys.RecordActivity(context.Background(), map[string]time.Time{store.Digest(k.key): now.Add(time.Duration(d-600) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// createAt creates a key in the store with the given creation time.
func createAt(t *testing.T, created time.Time, spec v1.OwnedAccessKeySpec) (name, key string) {
	t.Helper()
	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "faults-skew-" + randomSuffix(),
		CreationTimestamp: metav1.NewTime(created.UTC())}, Spec: spec}
	key, err := keys.Create(context.Background(), obj)
	if err != nil {
		t.Fatalf("create access key: %v", err)
	}
	return obj.Name, key
}

// checkActivityStamp: the last use of the idle key that always passes, as stored after the next
// flush, is at most the skew ahead of the true clock, and ahead of it: the replica ahead
// stamped it, so the key lives up to the skew longer than its ttl after that use.
func checkActivityStamp(t *testing.T, ks []skewedKey) {
	t.Helper()
	var k skewedKey
	for _, c := range ks {
		if c.idle && c.want(time.Now()) == faultload.MustAllow {
			k = c
		}
	}
	time.Sleep(3 * localdev.ActivityFlushInterval)
	stored, err := keys.Get(context.Background(), k.object)
	if err != nil || stored.Status.LastActivity == nil {
		t.Fatalf("%s: %+v, %v", k.name, stored, err)
	}
	ahead := stored.Status.LastActivity.Sub(time.Now())
	t.Logf("figures: %s: last use stored %s ahead of the true clock", k.name, ahead.Round(time.Second))
	if ahead > skew+time.Second {
		t.Errorf("%s: last use stamped %s ahead, more than the skew of %s", k.name, ahead, skew)
	}
	if ahead <= 0 {
		t.Errorf("%s: last use stamped %s ahead: the replica ahead did not stamp it", k.name, ahead)
	}
}

// restartReplica kills extauthz replica i and starts it with args.
func restartReplica(t *testing.T, i int, args ...string) {
	t.Helper()
	if err := platform.KillExtAuthzReplica(i); err != nil {
		t.Errorf("kill extauthz replica %d: %v", i, err)
	}
	if err := platform.StartExtAuthzReplica(context.Background(), i, args...); err != nil {
		t.Fatalf("start extauthz replica %d %v: %v", i, args, err)
	}
}

// waitBothReplicasCheck sends requests until Envoy has sent checks to both replicas (the health
// check lets a restarted one back within its interval).
func waitBothReplicasCheck(t *testing.T) {
	t.Helper()
	before := []int64{replicaChecks(t, 0), replicaChecks(t, 1)}
	p := &faultload.Probe{Name: "admin", Key: platform.AdminKey, Path: faultload.DemoPath + "/version"}
	faultload.Eventually(t, time.Minute, "both extauthz replicas get checks", func() error {
		_, _ = faultload.Request(context.Background(), p)
		for i, b := range before {
			if replicaChecks(t, i) <= b {
				return fmt.Errorf("replica %d has had no check yet", i)
			}
		}
		return nil
	})
}
