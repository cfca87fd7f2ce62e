package faultload

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// An ExpiringKey is a key whose expiry by the true clock is its probe's Expires: what clock skew
// between extauthz replicas (extauthz --testing-clock-offset) moves.
type ExpiringKey struct {
	*Probe
	// Object is its name in the store.
	Object string
	// Idle: it expires by ttlAfterLastActivity, counted from a last use stamped in the store.
	Idle bool
}

// ExpiringKeys makes, in the store, keys that expire each of in after now (truncated to the
// second; a negative one expired that long ago) by the true clock, the one that stamped their
// creation as keystore's does: by ttl (created an hour ago, living an hour and in) and, with
// idle, also by ttlAfterLastActivity (ten minutes from a use stamped ten minutes minus in ago).
// Their probes, GET /version on demo, allow skew either way of the expiry (Probe.Skew).
func ExpiringKeys(t *testing.T, now time.Time, skew time.Duration, in []time.Duration, idle bool) []ExpiringKey {
	t.Helper()
	now = now.Truncate(time.Second)
	created := now.Add(-time.Hour)
	var out []ExpiringKey
	for _, d := range in {
		when := fmt.Sprintf("expires in %s", d)
		if d < 0 {
			when = fmt.Sprintf("expired %s ago", -d)
		}
		k := ExpiringKey{Probe: &Probe{Name: "ttl, " + when, Path: DemoPath + "/version", Expires: now.Add(d), Skew: skew}}
		k.Object, k.Key = NewKeyAt(t, "expiring", created, v1.OwnedAccessKeySpec{User: localdev.AdminUser, TTL: int64((time.Hour + d).Seconds())})
		out = append(out, k)
		if !idle {
			continue
		}
		k = ExpiringKey{Probe: &Probe{Name: "ttlAfterLastActivity, " + when, Path: DemoPath + "/version", Expires: now.Add(d), Skew: skew}, Idle: true}
		k.Object, k.Key = NewKeyAt(t, "expiring", created, v1.OwnedAccessKeySpec{User: localdev.AdminUser, TTL: 600, TTLAfterLastActivity: true})
		used := now.Add(d - 10*time.Minute)
		if err := Keys.RecordActivity(context.Background(), map[string]time.Time{store.Digest(k.Key): used}); err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}
