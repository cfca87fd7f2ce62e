package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestActivityTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), "2030-01-02T03:04:05Z"},
		{time.Date(2030, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2030-01-02T03:04:05Z"},
		{time.Date(2030, 1, 2, 5, 4, 5, 0, time.FixedZone("", 2*3600)), "2030-01-02T03:04:05Z"},
	} {
		if got := activityTime(tc.in); got != tc.want {
			t.Errorf("activityTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// createForActivity creates a key and returns its digest.
func createForActivity(t *testing.T, k *v1.OwnedAccessKey) string {
	t.Helper()
	plain, err := store.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return Digest(plain)
}

func lastActivity(t *testing.T, name string) string {
	t.Helper()
	k, err := store.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if k.Status.LastActivity == nil {
		return ""
	}
	return k.Status.LastActivity.UTC().Format(time.RFC3339)
}

func TestRecordActivityKeepsTheNewest(t *testing.T) {
	base := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, tc := range []struct {
		name    string
		batches []time.Time
		want    string
	}{
		{"first use", []time.Time{base}, "2030-05-06T07:08:09Z"},
		{"newer replaces", []time.Time{base, base.Add(time.Hour)}, "2030-05-06T08:08:09Z"},
		{"older never overwrites", []time.Time{base.Add(time.Hour), base}, "2030-05-06T08:08:09Z"},
		{"same second is a no-op", []time.Time{base, base.Add(500 * time.Millisecond)}, "2030-05-06T07:08:09Z"},
		{"zero time ignored", []time.Time{{}}, ""},
		{"zero time after a real one", []time.Time{base, {}}, "2030-05-06T07:08:09Z"},
		{"a year later, lexically and in time", []time.Time{base, base.AddDate(1, 0, 0), base.AddDate(0, 11, 0)}, "2031-05-06T07:08:09Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unique(fmt.Sprintf("act-newest-%d", i))
			d := createForActivity(t, key(name, v1.OwnedAccessKeySpec{User: "u"}))
			for _, at := range tc.batches {
				if err := store.RecordActivity(context.Background(), map[string]time.Time{d: at}); err != nil {
					t.Fatal(err)
				}
			}
			if got := lastActivity(t, name); got != tc.want {
				t.Errorf("lastActivity = %q, want %q", got, tc.want)
			}
		})
	}
}

// Recording activity changes nothing else: not the object, not its resourceVersion, and it
// makes no event (it happens every few seconds for a key in use).
func TestRecordActivityChangesNothingElse(t *testing.T) {
	ctx := context.Background()
	name := unique("act-quiet")
	d := createForActivity(t, key(name, v1.OwnedAccessKeySpec{User: "alice", TTL: math.MaxInt64}))
	before, err := store.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := store.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := store.RecordActivity(ctx, map[string]time.Time{d: at}); err != nil {
		t.Fatal(err)
	}
	after, err := store.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.LastActivity == nil || !after.Status.LastActivity.Equal(&metav1.Time{Time: at}) {
		t.Errorf("lastActivity = %v, want %v", after.Status.LastActivity, at)
	}
	after.Status.LastActivity = nil
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("recording activity changed the key (-before +after):\n%s", diff)
	}
	if now, _ := store.CurrentVersion(ctx); now != rv {
		t.Errorf("recording activity moved the store's resourceVersion from %s to %s", rv, now)
	}
}

func TestRecordActivityDoesNotResurrectDeletedKeys(t *testing.T) {
	ctx := context.Background()
	name := unique("act-deleted")
	d := createForActivity(t, key(name, v1.OwnedAccessKeySpec{User: "u"}))
	if err := store.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	never := Digest("never-created-" + fmt.Sprint(time.Now().UnixNano()))
	if err := store.RecordActivity(ctx, map[string]time.Time{d: time.Now(), never: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, dg := range []string{d, never} {
		for _, h := range []string{recordsKey, activityKey} {
			if n, err := rdb.HExists(ctx, h, dg).Result(); err != nil || n {
				t.Errorf("%s holds %.12s after RecordActivity (%v): a deleted key came back", h, dg, err)
			}
		}
	}
}

// Concurrent batches with times in random order, and a concurrent writer of another field,
// leave the newest time and the other writer's change.
func TestRecordActivityConcurrentBatches(t *testing.T) {
	ctx := context.Background()
	const keys, writers, rounds = 20, 8, 25
	base := time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
	prefix := unique("act-conc")
	digests := make([]string, keys)
	for i := range digests {
		digests[i] = createForActivity(t, key(fmt.Sprintf("%s-%d", prefix, i), v1.OwnedAccessKeySpec{User: "u"}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				batch := map[string]time.Time{}
				for _, d := range digests {
					batch[d] = base.Add(time.Duration(rand.IntN(writers*rounds)) * time.Second)
				}
				if w == 0 && r == rounds-1 {
					// One writer's last batch holds the newest time for every key.
					for _, d := range digests {
						batch[d] = base.Add(time.Hour)
					}
				}
				if err := store.RecordActivity(ctx, batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range keys {
			for {
				err := store.SetDisabled(ctx, fmt.Sprintf("%s-%d", prefix, i), true)
				if errors.Is(err, redis.TxFailedErr) {
					continue // the optimistic transaction lost to a script: retry
				}
				if err != nil {
					errs <- err
				}
				break
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range keys {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if got := lastActivity(t, name); got != "2030-03-01T01:00:00Z" {
			t.Errorf("%s: lastActivity = %s, want the newest 2030-03-01T01:00:00Z", name, got)
		}
		k, err := store.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !k.Spec.Disabled {
			t.Errorf("%s: a concurrent SetDisabled was lost", name)
		}
	}
}

func TestRecordActivityScriptNotCached(t *testing.T) {
	ctx := context.Background()
	name := unique("act-noscript")
	d := createForActivity(t, key(name, v1.OwnedAccessKeySpec{User: "u"}))
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordActivity(ctx, map[string]time.Time{d: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if got := lastActivity(t, name); got != "2030-01-01T00:00:00Z" {
		t.Errorf("lastActivity = %q after SCRIPT FLUSH", got)
	}
}

func TestRecordActivityManyKeys(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2030, 7, 1, 0, 0, 0, 0, time.UTC)
	prefix := unique("act-many")
	batch := map[string]time.Time{}
	for i := range activityBatch + 7 { // more than one pipeline
		var d string
		if i%100 == 0 {
			d = createForActivity(t, key(fmt.Sprintf("%s-%d", prefix, i), v1.OwnedAccessKeySpec{User: "u"}))
		} else {
			d = Digest(fmt.Sprintf("%s-missing-%d", prefix, i))
		}
		batch[d] = at
	}
	if err := store.RecordActivity(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < activityBatch+7; i += 100 {
		if got := lastActivity(t, fmt.Sprintf("%s-%d", prefix, i)); got != "2030-07-01T00:00:00Z" {
			t.Errorf("%s-%d: lastActivity = %q", prefix, i, got)
		}
	}
}
