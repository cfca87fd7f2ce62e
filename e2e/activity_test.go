package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/localdev"
)

// Within a few flush intervals, a request through the edge shows in status.lastActivity.
const activityWithin = 10*localdev.ActivityFlushInterval + 10*time.Second

// A request through the edge reaches the key's status.lastActivity, off the request path.
func TestLastActivityIsRecorded(t *testing.T) {
	t.Parallel()
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: "admin"})
	before := time.Now().Truncate(time.Second) // stored at second precision
	if resp, body := get(t, key, "/kubernetes/cluster/demo/version", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	got := waitForActivity(t, name, before)
	if now := time.Now(); got.After(now) {
		t.Errorf("lastActivity %v is after now (%v)", got, now)
	}
}

// A ttlAfterLastActivity key counts its ttl from its last use: an old key that was never used
// is expired, the same key used a minute ago is not, and using it moves lastActivity on.
func TestTTLAfterLastActivity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: "admin", TTL: 600, TTLAfterLastActivity: true}, func(k *v1.OwnedAccessKey) {
		k.CreationTimestamp.Time = time.Now().Add(-time.Hour)
	})
	const path = "/kubernetes/cluster/demo/version"
	resp, body := get(t, key, path, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(status(t, resp, body).Message, "has expired") {
		t.Fatalf("never-used 10-minute key created an hour ago: HTTP %d %s; want 401 expired", resp.StatusCode, body)
	}

	// A use a minute ago, as another extauthz replica would have recorded it.
	lastUse := time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := keys.RecordActivity(ctx, map[string]time.Time{store.Digest(key): lastUse}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "key allowed after a recent use", func() error {
		if resp, body := get(t, key, path, nil); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	waitForActivity(t, name, lastUse.Add(time.Second))
}

// waitForActivity polls the store until the key's lastActivity is at or after since.
func waitForActivity(t *testing.T, name string, since time.Time) time.Time {
	t.Helper()
	var got time.Time
	eventually(t, activityWithin, "status.lastActivity of "+name, func() error {
		k, err := keys.Get(context.Background(), name)
		if err != nil {
			return err
		}
		if la := k.Status.LastActivity; la == nil || la.Time.Before(since) {
			return fmt.Errorf("lastActivity = %v, want at or after %v", la, since)
		}
		got = k.Status.LastActivity.Time
		return nil
	})
	return got
}
