package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/changelog"
)

// watchInBackground runs Watch from rv and sends the events of keys named with prefix.
func watchInBackground(t *testing.T, s *Store, rv, prefix string) (<-chan Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events, done := make(chan Event, 100), make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, rv, func(ev Event) error {
			if strings.HasPrefix(ev.Key.Name, prefix) {
				events <- ev
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * changelog.Block):
			t.Error("Watch did not end within two block periods of its context ending")
		}
	})
	return events, done
}

func next(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

// A watch from a list's resourceVersion sees every later change, in order, with the
// resourceVersions the writers got back.
func TestWatchAfterList(t *testing.T) {
	ctx := context.Background()
	prefix := unique("watch")
	before := key(prefix+"-before", v1.OwnedAccessKeySpec{User: "u"})
	if _, err := store.Create(ctx, before); err != nil {
		t.Fatal(err)
	}
	items, rv, err := store.ListWithVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !containsName(items, before.Name) {
		t.Fatalf("list at %s misses %s", rv, before.Name)
	}
	events, _ := watchInBackground(t, store, rv, prefix)

	begun := time.Now()
	plain, created, err := store.CreateObject(ctx, key(prefix+"-a", v1.OwnedAccessKeySpec{User: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	edit := created.DeepCopy()
	edit.Spec.Disabled = true
	updated, err := store.Update(ctx, edit)
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := store.DeleteObject(ctx, created.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ      watch.EventType
		rv       string
		disabled bool
	}{{watch.Added, created.ResourceVersion, false}, {watch.Modified, updated.ResourceVersion, true}, {watch.Deleted, deleted.ResourceVersion, true}} {
		ev := next(t, events)
		if ev.Type != want.typ || ev.Key.Name != created.Name || ev.Key.ResourceVersion != want.rv || ev.Key.Spec.Disabled != want.disabled {
			t.Errorf("event %s %s rv %s disabled %v; want %s %s rv %s disabled %v",
				ev.Type, ev.Key.Name, ev.Key.ResourceVersion, ev.Key.Spec.Disabled, want.typ, created.Name, want.rv, want.disabled)
		}
		if ev.Digest != Digest(plain) {
			t.Errorf("%s event digest %.12s, want the key's", ev.Type, ev.Digest)
		}
		// Redis runs on this machine: its clock is ours, give or take a second.
		if ev.At.Before(begun.Add(-time.Second)) || ev.At.After(time.Now().Add(time.Second)) {
			t.Errorf("%s event logged at %s, want Redis's time of the write (between %s and now)", ev.Type, ev.At, begun)
		}
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected event %s %s (the key made before the list must not show)", ev.Type, ev.Key.Name)
	case <-time.After(200 * time.Millisecond):
	}
}

// A watch resumed from the resourceVersion of an event gets the events after it, not it.
func TestWatchResumes(t *testing.T) {
	ctx := context.Background()
	prefix := unique("resume")
	_, created, err := store.CreateObject(ctx, key(prefix+"-k", v1.OwnedAccessKeySpec{User: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetDisabled(ctx, created.Name, true); err != nil {
		t.Fatal(err)
	}
	events, _ := watchInBackground(t, store, created.ResourceVersion, prefix)
	if ev := next(t, events); ev.Type != watch.Modified || !ev.Key.Spec.Disabled {
		t.Errorf("first event after the create's resourceVersion: %s disabled=%v; want the MODIFIED that disabled it", ev.Type, ev.Key.Spec.Disabled)
	}
}

func TestWatchRefusesVersions(t *testing.T) {
	ctx := context.Background()
	cur, err := store.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for rv, want := range map[string]error{
		"x":              ErrInvalid,
		"-1":             ErrInvalid,
		cur + "0000000":  ErrTooNew,
		"18446744073709": ErrTooNew,
	} {
		if err := store.Watch(ctx, rv, func(Event) error { return nil }); !errors.Is(err, want) {
			t.Errorf("Watch(%q): %v, want %v", rv, err, want)
		}
	}
}

// isolated is a store on its own Redis database, for tests that trim the event stream.
func isolated(t *testing.T, db int, history int64) *Store {
	t.Helper()
	if redisserver.OnCluster() {
		t.Skip("Redis Cluster has database 0 only: the isolated stores of this test need a database of their own")
	}
	c := redis.NewClient(&redis.Options{Addr: redisAddr, DB: db})
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return NewWithOptions(c, Options{EventHistory: history})
}

func churn(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Create(context.Background(), key(fmt.Sprintf("%s-%d", prefix, i), v1.OwnedAccessKeySpec{User: "u"})); err != nil {
			t.Fatal(err)
		}
	}
}

// Once the events after a resourceVersion are trimmed, a watch from it fails with ErrExpired
// (410 Gone at the API) instead of silently missing changes.
func TestWatchExpired(t *testing.T) {
	s := isolated(t, 1, 10)
	churn(t, s, "expired", 500)
	err := s.Watch(context.Background(), "1", func(Event) error { return nil })
	if !errors.Is(err, ErrExpired) {
		t.Errorf("Watch from 1 after 500 changes with a history of 10: %v, want ErrExpired", err)
	}
}

// A watcher that falls behind while the stream is trimmed notices the gap.
func TestWatchNoticesAGap(t *testing.T) {
	s := isolated(t, 2, 10)
	churn(t, s, "gap-first", 1)
	release := make(chan struct{})
	first := make(chan struct{})
	done := make(chan error, 1)
	seen := 0
	go func() {
		done <- s.Watch(context.Background(), "0", func(Event) error {
			seen++
			if seen == 1 {
				close(first)
				<-release // stall while the stream moves on
			}
			return nil
		})
	}()
	<-first
	churn(t, s, "gap-more", 1000)
	close(release)
	select {
	case err := <-done:
		if !errors.Is(err, ErrExpired) {
			t.Errorf("Watch of a stalled watcher: %v, want ErrExpired", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a watcher whose events were trimmed kept going")
	}
}

func containsName(keys []*v1.OwnedAccessKey, name string) bool {
	for _, k := range keys {
		if k.Name == name {
			return true
		}
	}
	return false
}

// Redis that loses its data (restarted without persistence, or failed over to a replica that
// lagged) goes back to older resourceVersions while a watcher's connection is quietly
// re-established. The watcher must not wait forever for versions it has already seen.
func TestWatchNoticesLostData(t *testing.T) {
	s := isolated(t, 3, 100)
	churn(t, s, "lost", 5)
	done, first := make(chan error, 1), make(chan struct{})
	var once sync.Once
	go func() {
		done <- s.Watch(context.Background(), "4", func(Event) error { once.Do(func() { close(first) }); return nil })
	}()
	<-first // the watch is past its start and has seen version 5
	if err := s.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	churn(t, s, "lost-again", 1) // resourceVersion 1 again
	select {
	case err := <-done:
		if !errors.Is(err, ErrExpired) {
			t.Errorf("Watch after the store lost its data: %v, want ErrExpired", err)
		}
	case <-time.After(3 * changelog.Block):
		t.Fatal("a watcher kept waiting after the store went back in time")
	}
}

// The same, when the store takes more new changes than it lost before the watcher's next read:
// the versions that follow the last one seen exist again, but they are another history's, and
// the watcher must not hand them out as if it had missed nothing.
func TestWatchNoticesLostDataOvertaken(t *testing.T) {
	s := isolated(t, 4, 100)
	churn(t, s, "overtaken", 5)
	done, first := make(chan error, 1), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var after []string
	go func() {
		done <- s.Watch(context.Background(), "4", func(ev Event) error {
			mu.Lock()
			defer mu.Unlock()
			if ev.Key.ResourceVersion != "5" {
				after = append(after, ev.Key.Name)
			}
			once.Do(func() { close(first) })
			return nil
		})
	}()
	<-first // the watch has seen version 5
	if err := s.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	churn(t, s, "overtaken-again", 10) // versions 1 to 10 again
	select {
	case err := <-done:
		if !errors.Is(err, ErrExpired) {
			t.Errorf("Watch after the store lost its data and took new changes: %v, want ErrExpired", err)
		}
	case <-time.After(3 * changelog.Block):
		t.Fatal("a watcher went on after the store went back in time and took new changes")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(after) > 0 {
		t.Errorf("the watcher handed out %v, changes of another history", after)
	}
}

// Head names the newest change as the watch handed it (its Entry), and tells the same version
// of another history apart: after Redis lost its data and took as many new changes, the
// version is the same and the entry is not.
func TestHead(t *testing.T) {
	s := isolated(t, 7, 100)
	ctx := context.Background()
	if h, err := s.Head(ctx); err != nil || h != (Head{}) {
		t.Fatalf("Head of an empty store = %+v, %v; want version 0, no entry", h, err)
	}
	events, _ := watchInBackground(t, s, "0", "head")
	churn(t, s, "head", 2)
	next(t, events)
	ev := next(t, events)
	h, err := s.Head(ctx)
	if err != nil || h.Version != 2 || h.Entry == "" || h.Entry != ev.Entry {
		t.Fatalf("Head after 2 changes = %+v, %v; want version 2 and the entry of the event %+v", h, err, ev)
	}
	if err := s.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	churn(t, s, "head-again", 2)
	again, err := s.Head(ctx)
	if err != nil || again.Version != 2 || again.Entry == "" || again.Entry == h.Entry {
		t.Errorf("Head after the loss and 2 new changes = %+v, %v; want version 2 and another entry than %s", again, err, h.Entry)
	}
	if err := s.rdb.Del(ctx, eventsKey).Err(); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Head(ctx); err != nil || h.Version != 2 || h.Entry != "" {
		t.Errorf("Head of a store whose stream is gone = %+v, %v; want version 2, no entry", h, err)
	}
}

// ListDigests lists every stored key's digest, over several HSCAN batches, and none deleted.
func TestListDigests(t *testing.T) {
	s := isolated(t, 5, 100)
	ctx := context.Background()
	want := map[string]bool{}
	n := 2*DigestBatch + 10
	if testing.Short() {
		n = 30
	}
	for i := range n {
		plain, err := s.Create(ctx, key(fmt.Sprintf("list-digests-%d", i), v1.OwnedAccessKeySpec{User: "u"}))
		if err != nil {
			t.Fatal(err)
		}
		want[Digest(plain)] = true
	}
	if err := s.Delete(ctx, "list-digests-0"); err != nil {
		t.Fatal(err)
	}
	for d := range want {
		if _, err := s.LookupDigest(ctx, d); errors.Is(err, ErrNotFound) {
			delete(want, d)
		}
	}
	got, batches := map[string]bool{}, 0
	err := s.ListDigests(ctx, func(digests []string) error {
		batches++
		for _, d := range digests {
			got[d] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("listed %d digests, want %d", len(got), len(want))
	}
	for d := range want {
		if !got[d] {
			t.Errorf("digest %.12s not listed", d)
		}
	}
	t.Logf("%d digests in %d batches", len(got), batches)
}

// BenchmarkListDigests lists a million digests (written straight into the rvs hash): how long
// an extauthz replica takes to (re)build its digest set from Redis.
func BenchmarkListDigests(b *testing.B) {
	if redisserver.OnCluster() {
		b.Skip("Redis Cluster has database 0 only: the benchmark fills a database of its own")
	}
	c := redis.NewClient(&redis.Options{Addr: redisAddr, DB: 6})
	defer c.Close()
	ctx := context.Background()
	if err := c.FlushDB(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	const n = 1_000_000
	for i := 0; i < n; i += 10000 {
		args := make([]any, 0, 20000)
		for j := i; j < i+10000; j++ {
			args = append(args, Digest(strconv.Itoa(j)), j)
		}
		if err := c.HSet(ctx, rvsKey, args...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	s := New(c)
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		listed := 0
		if err := s.ListDigests(ctx, func(d []string) error { listed += len(d); return nil }); err != nil {
			b.Fatal(err)
		}
		if listed < n {
			b.Fatalf("listed %d of %d", listed, n)
		}
	}
	b.ReportMetric(float64(n), "digests")
	// Redis's own time, apart from the round trips and this machine's other load.
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hscan:"); ok {
			for _, f := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					us, _ := strconv.ParseFloat(v, 64)
					b.ReportMetric(us/1000/float64(b.N), "redis-ms/op")
				}
			}
		}
	}
}
