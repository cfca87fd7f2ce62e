package keycache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

func randomDigest() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// commandCalls is Redis's count of calls per command (INFO commandstats), lower case: summed
// over every master of a Cluster, whose INFO would otherwise come from any one node.
func commandCalls(tb testing.TB, rdb redis.UniversalClient) map[string]int64 {
	tb.Helper()
	ctx := context.Background()
	var infos []string
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, info)
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, read)
	} else {
		var info string
		info, err = rdb.Info(ctx, "commandstats").Result()
		infos = append(infos, info)
	}
	if err != nil {
		tb.Fatal(err)
	}
	calls := map[string]int64{}
	for _, info := range infos {
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			calls[strings.TrimPrefix(name, "cmdstat_")] += n
		}
	}
	return calls
}

// Two replicas follow the store; a key created a moment ago works on the very next lookup at
// both, every time, while unknown keys are refused from the digest set: proven absent by a read
// of the store's newest change, or on a lease's word.
func TestNewKeysWorkAtOnceOnEveryReplica(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *Cache{"reading": replica, "leased": leasedReplica} {
		t.Run(name, func(t *testing.T) {
			a, b := start(t), start(t)
			ctx := context.Background()
			const n = 300
			for i := range n {
				_, digest := createKey(t, v1.OwnedAccessKeySpec{User: "erin"})
				for name, c := range map[string]*Cache{"a": a, "b": b} {
					if _, err := c.LookupDigest(ctx, digest); err != nil {
						t.Fatalf("key %d, created before the lookup, at replica %s: %v", i, name, err)
					}
					if _, err := c.LookupDigest(ctx, randomDigest()); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("an unknown key at replica %s: %v", name, err)
					}
				}
			}
			for name, c := range map[string]*Cache{"a": a, "b": b} {
				absent := testutil.ToFloat64(c.metrics.absent)
				t.Logf("replica %s: %d new keys found, %v unknown keys refused from the set, %v version reads, fallbacks lagging %v error %v resync %v, %v lease renewals",
					name, n, absent, testutil.ToFloat64(c.metrics.versionReads), testutil.ToFloat64(c.metrics.fallbacks[fallbackLagging]),
					testutil.ToFloat64(c.metrics.fallbacks[fallbackError]), testutil.ToFloat64(c.metrics.fallbacks[fallbackResync]),
					testutil.ToFloat64(c.metrics.renewals[renewOK]))
				if absent < n/2 {
					t.Errorf("replica %s refused only %v of %d unknown keys from the set", name, absent, n)
				}
			}
		})
	}
}

// A flood of made-up keys at full speed costs Redis no lookup, and one version read per batch
// of them (at most one in flight per replica), never one per key.
func TestFloodOfUnknownKeys(t *testing.T) {
	a, b := replica(t), replica(t)
	createKey(t, v1.OwnedAccessKeySpec{User: "flood"})
	admin := newClient()
	defer admin.Close()
	const n, workers = 20000, 32
	before := commandCalls(t, admin)
	refused := flood(t, n, workers, a, b)
	after := commandCalls(t, admin)
	delta := func(cmd string) int64 { return after[cmd] - before[cmd] }
	reads := testutil.ToFloat64(a.metrics.versionReads) + testutil.ToFloat64(b.metrics.versionReads)
	t.Logf("%d unknown keys at 2 replicas: %d refused; Redis ran %d HGET, %d GET and %d XREVRANGE (%v version reads), %d XRANGE, %d XREAD",
		n, refused, delta("hget"), delta("get"), delta("xrevrange"), reads, delta("xrange"), delta("xread"))
	if refused != n {
		t.Errorf("%d of %d unknown keys refused", refused, n)
	}
	if delta("hget") != 0 {
		t.Errorf("%d HGETs: unknown keys were looked up in Redis", delta("hget"))
	}
	// Each replica has 16 lookups in flight and one read: a read serves those that arrived
	// while the one before it ran, several on average, never one per key.
	if delta("get") > n/4 {
		t.Errorf("%d GETs for %d unknown keys: version reads are not batched", delta("get"), n)
	}
}

// flood looks up n random digests from workers at once, spread over the replicas, and returns
// how many were refused as unknown; any other answer fails the test.
func flood(t *testing.T, n, workers int, replicas ...*Cache) int64 {
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c := replicas[w%len(replicas)]
		wg.Go(func() {
			for range n / workers {
				if _, err := c.LookupDigest(context.Background(), randomDigest()); errors.Is(err, store.ErrNotFound) {
					refused.Add(1)
				} else {
					t.Errorf("unknown key: %v", err)
				}
			}
		})
	}
	wg.Wait()
	return refused.Load()
}

// Redis restarts empty (no persistence) and takes more new changes than it lost: every replica
// notices, what it cached is not served any more, and keys of the new history work at once.
func TestRedisRestartedEmpty(t *testing.T) {
	if redisserver.OnCluster() {
		t.Skip("a Cluster node restarted without its data loses its slots and its place in the Cluster, which then stops serving: Redis losing its data on a Cluster is TestRedisLosesDataAndOvertakes's flush of every master")
	}
	a, b := replica(t), replica(t)
	ctx := context.Background()
	_, lost := createKey(t, v1.OwnedAccessKeySpec{User: "frank"})
	warm(t, a, lost)
	warm(t, b, lost)
	_, lostUnknown := createKey(t, v1.OwnedAccessKeySpec{User: "frank"}) // in the sets, not cached
	v0, err := keys.CurrentVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := redisSrv.RestartEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		cur, err := keys.CurrentVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(cur); n > mustAtoi(t, v0)+2 {
			break
		}
		createKey(t, v1.OwnedAccessKeySpec{User: "frank"})
	}
	for name, c := range map[string]*Cache{"a": a, "b": b} {
		until(t, "replica "+name+" refuses the key Redis lost", gone(c, lost))
		for range 100 {
			if !gone(c, lost)() || !gone(c, lostUnknown)() {
				t.Fatalf("replica %s served a key Redis lost", name)
			}
		}
		until(t, "replica "+name+" follows the events again", c.Live)
	}
	for i := range 50 {
		_, digest := createKey(t, v1.OwnedAccessKeySpec{User: "frank"})
		for name, c := range map[string]*Cache{"a": a, "b": b} {
			if _, err := c.LookupDigest(ctx, digest); err != nil {
				t.Fatalf("key %d of the new history at replica %s: %v", i, name, err)
			}
		}
	}
}

// Redis loses its data without dropping connections (FLUSHDB stands for it) and takes more new
// changes than it lost before the replica's next read of the stream, so that the versions
// after the last one the replica saw exist again, from another history. The replica notices
// (the entry it saw last is not there any more) rather than following the new history as if
// nothing happened, and stops serving the key Redis lost.
func TestRedisLosesDataAndOvertakes(t *testing.T) {
	rdb := lossClient(7)
	ctx := context.Background()
	flush(t, rdb)
	s := store.New(rdb)
	create := func() string {
		plain, err := s.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "gina"}})
		if err != nil {
			t.Fatal(err)
		}
		return store.Digest(plain)
	}
	create()
	a := replicaOn(t, lossClient(7))
	lost := create()
	warm(t, a, lost)
	flush(t, rdb)
	for range 5 { // versions 1 to 5: past the 2 lost
		create()
	}
	until(t, "the replica refuses the key Redis lost", gone(a, lost))
	if got := testutil.ToFloat64(a.metrics.restarts.WithLabelValues("resync")); got < 1 {
		t.Errorf("restarts{resync} = %v, want at least 1", got)
	}
	until(t, "the replica follows the events again", a.Live)
	fresh := create()
	if _, err := a.LookupDigest(ctx, fresh); err != nil {
		t.Errorf("a key of the new history: %v", err)
	}
}

// lossClient is a client, with extauthz's timeouts, for a test that makes Redis lose its data:
// on database db of the standalone Redis, apart from the other tests'; on a Cluster, which has
// one database, on all of it (the tests after it make their own keys).
func lossClient(db int) redis.UniversalClient {
	opts := redisSrv.UniversalOptions()
	if !opts.IsClusterMode {
		opts.DB = db
	}
	opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond
	return redis.NewUniversalClient(opts)
}

// flush empties rdb's database, on every master of a Cluster: Redis losing its data, with
// the connections kept.
func flush(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushDB(ctx).Err() })
	} else {
		err = rdb.FlushDB(ctx).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// pausingStore is a key store whose event stream stops right after the follower applied the
// change of version pauseAt, until release is closed or the watch ends: a follower that has
// not noticed yet, as on a busy replica, deterministically.
type pausingStore struct {
	*store.Store
	pauseAt uint64
	paused  chan struct{} // closed once paused
	release chan struct{}
	once    sync.Once
}

func (p *pausingStore) Watch(ctx context.Context, rv string, handle func(store.Event) error) error {
	return p.Store.Watch(ctx, rv, func(ev store.Event) error {
		err := handle(ev)
		if ev.Version != p.pauseAt {
			return err
		}
		p.once.Do(func() {
			close(p.paused)
			select {
			case <-p.release:
			case <-ctx.Done():
			}
		})
		return err
	})
}

// Redis loses its data (FLUSHDB) and takes exactly as many new changes as the replica had
// applied, whose follower has not noticed yet: the store is at the very version the replica
// applied, on another history. A key made after the loss works at once (the replica reads it
// from Redis rather than refusing it from the set of the lost history), and the replica then
// empties itself: the key Redis lost, which it had cached, is refused.
func TestRedisLosesDataAndReachesTheSameVersion(t *testing.T) {
	rdb := lossClient(8)
	defer rdb.Close()
	ctx := context.Background()
	flush(t, rdb)
	s := store.New(rdb)
	create := func() string {
		plain, err := s.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: objectMeta(), Spec: v1.OwnedAccessKeySpec{User: "hugo"}})
		if err != nil {
			t.Fatal(err)
		}
		return store.Digest(plain)
	}
	create()
	client := lossClient(8)
	p := &pausingStore{Store: store.New(client), pauseAt: 2, paused: make(chan struct{}), release: make(chan struct{})}
	defer close(p.release)
	a := replicaOf(t, p, client)
	lost := create() // version 2: the follower applies it, and pauses
	<-p.paused
	warm(t, a, lost)
	flush(t, rdb)
	create()
	fresh := create() // version 2 again
	if _, err := a.LookupDigest(ctx, fresh); err != nil {
		t.Fatalf("a key made after the loss, at the version the replica applied: %v", err)
	}
	if got := testutil.ToFloat64(a.metrics.fallbacks[fallbackResync]); got != 1 {
		t.Errorf("fallbacks{resync} = %v, want 1", got)
	}
	until(t, "the replica refuses the key Redis lost", gone(a, lost))
	until(t, "the replica follows again", func() bool { return testutil.ToFloat64(a.metrics.restarts.WithLabelValues("resync")) == 1 })
	until(t, "the replica follows the events again", a.Live)
	if _, err := a.LookupDigest(ctx, create()); err != nil {
		t.Errorf("a key of the new history: %v", err)
	}
}

func objectMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: fmt.Sprintf("kc-%d", time.Now().UnixNano())}
}

func mustAtoi(tb testing.TB, s string) int {
	tb.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
