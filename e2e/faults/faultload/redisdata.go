package faultload

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/redisserver"
)

// Redis losing its data, and a restore from a backup: what TestRedisLosesItsData and the soak's
// data-loss fault do to the platform's Redis, whatever its shape (Sentinel: the master; Cluster:
// every master; replicas follow their masters).

// RedisData is every key of the platform's Redis as DUMP serialised it: a backup.
type RedisData []DumpedKey

// DumpedKey is one key of a RedisData.
type DumpedKey struct {
	Key, Value string
	TTL        time.Duration // 0: none
}

// DumpRedis DUMPs every key of every master.
func DumpRedis(t *testing.T) RedisData {
	t.Helper()
	ctx := context.Background()
	names, err := redisserver.Keys(ctx, RDB, "*")
	if err != nil {
		t.Fatalf("dump Redis: %v", err)
	}
	var out RedisData
	for _, k := range names {
		v, err := RDB.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired meanwhile
		}
		if err != nil {
			t.Fatalf("dump %s: %v", k, err)
		}
		ttl, err := RDB.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatalf("pttl %s: %v", k, err)
		}
		out = append(out, DumpedKey{Key: k, Value: v, TTL: max(ttl, 0)})
	}
	return out
}

// FlushRedis empties every master (FLUSHALL, which reaches their replicas too): Redis restarted
// without persistence, or failed over to a replica that had nothing yet, as its clients see it
// once go-redis has reconnected.
func FlushRedis(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := flushRedis(ctx); err != nil {
		t.Fatalf("flush Redis: %v", err)
	}
}

func flushRedis(ctx context.Context) error {
	return redisserver.ForEachMaster(ctx, RDB, func(c *redis.Client) error { return c.FlushAll(ctx).Err() })
}

// RestoreRedis makes d the whole of Redis's data again, as a restore from a backup would.
//
// It is one transaction (MULTI: FLUSHALL and every RESTORE), because a real restore is atomic
// for clients (Redis loads its RDB or AOF file before it serves, a replica's full sync swaps
// the whole data set): restored key by key, extauthz could list the access keys' digests half
// way through, after the counter and the change stream were back but before every key was,
// which no real restore shows it. A Redis Cluster has no transaction across slots: there every
// master is flushed first, then each slot's keys are restored in a transaction of their own
// (all the access keys' data shares the {accesskeys} slot, so it comes back at once).
func RestoreRedis(t *testing.T, d RedisData) {
	t.Helper()
	if err := restoreRedis(context.Background(), d); err != nil {
		t.Fatalf("restore Redis: %v", err)
	}
}

func restoreRedis(ctx context.Context, d RedisData) error {
	cluster, ok := RDB.(*redis.ClusterClient)
	if !ok {
		_, err := RDB.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.FlushAll(ctx)
			restoreKeys(ctx, p, d)
			return nil
		})
		return err
	}
	if err := flushRedis(ctx); err != nil {
		return err
	}
	bySlot := map[int64]RedisData{}
	for _, k := range d {
		slot, err := cluster.ClusterKeySlot(ctx, k.Key).Result()
		if err != nil {
			return fmt.Errorf("slot of %s: %w", k.Key, err)
		}
		bySlot[slot] = append(bySlot[slot], k)
	}
	for _, keys := range bySlot {
		if _, err := cluster.TxPipelined(ctx, func(p redis.Pipeliner) error { restoreKeys(ctx, p, keys); return nil }); err != nil {
			return err
		}
	}
	return nil
}

func restoreKeys(ctx context.Context, p redis.Pipeliner, d RedisData) {
	for _, k := range d {
		p.RestoreReplace(ctx, k.Key, k.TTL, k.Value)
	}
}

// NoticeLoss polls every extauthz replica's keygate_extauthz_keycache_digests until it reads 0:
// the replica dropped its cache and digest set, having noticed that Redis lost data. Call it
// once Redis lost the keys of lost (Start), and keep Redis empty until it answered: a
// replica lists the store again at once, so the gauge stays 0 only while the store is empty
// (a poll would miss a short 0 between two non-empty sets). Once every replica has noticed, it marks lost InForce at once
// (a lost key's 200 sent later is a false allow), and sends the time. That is when the last
// poll answered, a little after the replicas noticed: it errs on the lenient side by a poll,
// never against the edge. The channel is closed without a time if ctx ends first.
func NoticeLoss(ctx context.Context, lost []*Revocation) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		defer close(out)
		pending := map[int]bool{}
		for i := range Platform.ExtAuthzReplicas() {
			pending[i] = true
		}
		for len(pending) > 0 {
			for i := range pending {
				if n, err := replicaMetric(ctx, i, "keygate_extauthz_keycache_digests"); err == nil && n == 0 {
					delete(pending, i)
				}
			}
			if ctx.Err() != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // a poll costs the replica a /metrics page
		}
		at := time.Now()
		for _, r := range lost {
			r.InForce(at)
		}
		out <- at
	}()
	return out
}
