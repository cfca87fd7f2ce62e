package keycache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// A real Redis (with persistence, so that it can be restarted under the caches) shared by the
// package's tests; each test makes its own keys.
var (
	redisSrv *redisserver.Server
	keys     *store.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "extauthz/keycache", redisserver.Options{AppendOnly: true}, func(srv *redisserver.Server) {
		redisSrv = srv
		keys = store.New(newClient())
	})
}

// newClient has extauthz's timeouts, so that a dead connection is noticed as in production.
func newClient() redis.UniversalClient {
	opts := redisSrv.UniversalOptions() // a Cluster with KEYGATE_TEST_REDIS=cluster
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	return redis.NewUniversalClient(opts)
}

// replica is one extauthz replica's cache, on its own Redis client, following events until the
// test ends.
func replica(tb testing.TB) *Cache {
	tb.Helper()
	return replicaOn(tb, newClient())
}

// replicaOn is replica on rdb, which it closes at the end.
func replicaOn(tb testing.TB, rdb redis.UniversalClient) *Cache {
	tb.Helper()
	return replicaOf(tb, store.New(rdb), rdb)
}

// replicaOf is replica on src, a store on rdb, which it closes at the end.
func replicaOf(tb testing.TB, src Source, rdb redis.UniversalClient) *Cache {
	tb.Helper()
	return startReplica(tb, src, rdb, 0)
}

// leasedReplica is replica holding a lease (Options.Lease), once it trusts its set on the
// lease's word.
func leasedReplica(tb testing.TB) *Cache {
	tb.Helper()
	rdb := newClient()
	return leasedReplicaOf(tb, store.New(rdb), rdb)
}

// leasedReplicaOf is leasedReplica on src, a store on rdb.
func leasedReplicaOf(tb testing.TB, src Source, rdb redis.UniversalClient) *Cache {
	tb.Helper()
	c := startReplica(tb, src, rdb, time.Second)
	until(tb, "the replica trusts its set on its lease's word", c.Trusted)
	return c
}

// startReplica starts a replica on src, a store on rdb, holding a lease when lease > 0; it
// stops it and closes rdb at the end.
func startReplica(tb testing.TB, src Source, rdb redis.UniversalClient, lease time.Duration) *Cache {
	tb.Helper()
	c := New(src, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Lease: lease},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	tb.Cleanup(func() {
		cancel()
		if c.leaser != nil {
			// The replica releases its lease as it stops (after its last renewal): wait for
			// that before closing rdb under it, so that the next test's creates do not wait
			// for a lease without a replica.
			for start := time.Now(); leaseHeld(tb, c) && time.Since(start) < 2*time.Second; {
				time.Sleep(time.Millisecond)
			}
		}
		// Closing the client ends a blocked XREAD at once, rather than after its block time.
		rdb.Close()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !c.Live() || !c.listed() {
		if time.Now().After(deadline) {
			tb.Fatal("cache never started following the key store's events")
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

// leaseHeld reports whether c holds its lease in the store: there, and not marked released
// (keystore/store/replicas.go).
func leaseHeld(tb testing.TB, c *Cache) bool {
	tb.Helper()
	rdb := newClient()
	defer rdb.Close()
	v, err := rdb.HGet(context.Background(), "keygate:{accesskeys}:replicas", c.leaseID).Result()
	if errors.Is(err, redis.Nil) {
		return false
	}
	if err != nil {
		tb.Fatal(err)
	}
	return !strings.HasSuffix(v, " released")
}

func createKey(tb testing.TB, spec v1.OwnedAccessKeySpec) (name, digest string) {
	tb.Helper()
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{GenerateName: "kc-"}, Spec: spec}
	k.Name = fmt.Sprintf("kc-%d", time.Now().UnixNano())
	plain, err := keys.Create(context.Background(), k)
	if err != nil {
		tb.Fatal(err)
	}
	return k.Name, store.Digest(plain)
}

// until polls f every millisecond until it is true, for at most 10s, and returns how long it took.
func until(tb testing.TB, what string, f func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > 10*time.Second {
			tb.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// warm looks digest up at c until c holds it: the key's creation event may still be on its way
// and drop the first answer.
func warm(tb testing.TB, c *Cache, digest string) {
	tb.Helper()
	until(tb, "the key is cached", func() bool {
		if _, err := c.LookupDigest(context.Background(), digest); err != nil {
			tb.Fatal(err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lru.Contains(digest)
	})
}

func gone(c *Cache, digest string) func() bool {
	return func() bool {
		_, err := c.LookupDigest(context.Background(), digest)
		return errors.Is(err, store.ErrNotFound)
	}
}

// Every replica refuses a deleted key, though each had it cached, and neither serves it again.
func TestDeletionReachesEveryReplica(t *testing.T) {
	a, b := replica(t), replica(t)
	name, digest := createKey(t, v1.OwnedAccessKeySpec{User: "alice"})
	warm(t, a, digest)
	warm(t, b, digest)
	if err := keys.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	ta := until(t, "replica a refuses the deleted key", gone(a, digest))
	tb := until(t, "replica b refuses the deleted key", gone(b, digest))
	t.Logf("deletion refused after %s and %s", ta, tb)
	if !gone(a, digest)() || !gone(b, digest)() {
		t.Error("a deleted key came back")
	}
}

func TestDisablingReachesEveryReplica(t *testing.T) {
	a, b := replica(t), replica(t)
	name, digest := createKey(t, v1.OwnedAccessKeySpec{User: "bob"})
	warm(t, a, digest)
	warm(t, b, digest)
	if err := keys.SetDisabled(context.Background(), name, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Cache{a, b} {
		until(t, "the replica sees the key disabled", func() bool {
			k, err := c.LookupDigest(context.Background(), digest)
			return err == nil && k.Spec.Disabled
		})
	}
}

// Redis restarts with its data (append-only): go-redis reconnects the event stream by itself,
// nothing was missed, and a deletion after the restart still reaches the cache.
func TestRedisRestart(t *testing.T) {
	a := replica(t)
	name, digest := createKey(t, v1.OwnedAccessKeySpec{User: "carol"})
	warm(t, a, digest)
	if err := redisSrv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	warm(t, a, digest) // the key survived the restart
	if err := keys.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	until(t, "a deletion after the restart reaches the cache", gone(a, digest))
}

// Redis loses its data (restarted without persistence, a failover to a lagging replica): the
// stream goes back in time, the cache notices, empties itself and follows the events again. Keys
// that Redis lost are refused, not served from memory.
func TestRedisLosesData(t *testing.T) {
	a := replica(t)
	_, digest := createKey(t, v1.OwnedAccessKeySpec{User: "dave"})
	warm(t, a, digest)
	admin := newClient()
	defer admin.Close()
	if err := redisserver.ForEachMaster(context.Background(), admin, func(c *redis.Client) error { return c.FlushAll(context.Background()).Err() }); err != nil {
		t.Fatal(err)
	}
	resyncs := a.metrics.restarts.WithLabelValues("resync")
	until(t, "the cache notices the store went back in time", func() bool { return testutil.ToFloat64(resyncs) >= 1 })
	until(t, "the lost key is refused", gone(a, digest))
	until(t, "the cache follows events again", a.Live)
	_, digest2 := createKey(t, v1.OwnedAccessKeySpec{User: "dave"})
	warm(t, a, digest2)
}

// BenchmarkRevocation measures how long a deleted key stays usable at a replica that had it
// cached: the time from Delete's acknowledgement until a lookup refuses it, with two replicas
// following the events as in a deployment. Lookups are polled back to back, so the figure
// includes no polling interval. Reported as revocation-ns/op (the mean) and max-ns.
func BenchmarkRevocation(b *testing.B) {
	r1, r2 := replica(b), replica(b)
	ctx := context.Background()
	var worst, total time.Duration
	for b.Loop() {
		b.StopTimer()
		name, digest := createKey(b, v1.OwnedAccessKeySpec{User: "bench"})
		warm(b, r1, digest)
		warm(b, r2, digest)
		b.StartTimer()
		start := time.Now()
		if err := keys.Delete(ctx, name); err != nil {
			b.Fatal(err)
		}
		acked := time.Since(start)
		for _, c := range []*Cache{r1, r2} {
			for !gone(c, digest)() {
			}
		}
		d := time.Since(start) - acked
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "revocation-ns/op")
	b.ReportMetric(float64(worst.Nanoseconds()), "max-ns")
}

// BenchmarkLookup compares a lookup answered from the cache with one that reads Redis, side
// by side in one run.
func BenchmarkLookup(b *testing.B) {
	_, digest := createKey(b, v1.OwnedAccessKeySpec{User: "bench"})
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		c := replica(b)
		for b.Loop() {
			if _, err := c.LookupDigest(ctx, digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis", func(b *testing.B) {
		for b.Loop() {
			if _, err := keys.LookupDigest(ctx, digest); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUnknownKeys measures refusing unknown keys (each one proven absent by a read of the
// store's newest change that began after it arrived), two lookups at a time as two busy gRPC
// streams make them, with the reader of versions lingering between reads (as served) and
// without (a goroutine per read, as before): wall time and this process's CPU per lookup.
func BenchmarkUnknownKeys(b *testing.B) {
	ctx := context.Background()
	for _, linger := range []time.Duration{0, readerLinger} {
		b.Run(fmt.Sprintf("linger=%s", linger), func(b *testing.B) {
			defer func(was time.Duration) { readerLinger = was }(readerLinger)
			readerLinger = linger
			c := replica(b)
			before := cpuTime(b)
			b.SetParallelism(1)
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, err := c.LookupDigest(ctx, fmt.Sprintf("%064x", i)); !errors.Is(err, store.ErrNotFound) {
						b.Fatalf("unknown key: %v, want not found", err)
					}
				}
			})
			b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAppliedResourceVersion: keygate_extauthz_keycache_applied_resource_version reaches the
// resourceVersion the store answered a delete with, and from then on the replica refuses the
// key: what a client (the soak's churn) waits for before it calls a later answer a false allow.
func TestAppliedResourceVersion(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := New(keys, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	name, digest := createKey(t, v1.OwnedAccessKeySpec{User: "erin"})
	until(t, "the cache is live", c.Live)
	warm(t, c, digest)
	deleted, err := keys.DeleteObject(context.Background(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := strconv.ParseFloat(deleted.ResourceVersion, 64)
	if err != nil {
		t.Fatalf("the delete's resourceVersion %q: %v", deleted.ResourceVersion, err)
	}
	until(t, "the gauge reaches the delete's resourceVersion", func() bool {
		return gaugeValue(t, reg) >= want
	})
	if !gone(c, digest)() {
		t.Fatal("the replica applied the delete's resourceVersion but still serves the key")
	}
}

// gaugeValue is keygate_extauthz_keycache_applied_resource_version's value in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "keygate_extauthz_keycache_applied_resource_version" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no keygate_extauthz_keycache_applied_resource_version")
	return 0
}
