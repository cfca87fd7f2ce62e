package redisserver

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ShapeEnv names the environment variable that chooses the Redis of TestMain: unset or
// "standalone" one server, "cluster" a Redis Cluster of three masters with a replica each, so
// that a package's whole suite runs against Cluster too (`make test-cluster`).
const ShapeEnv = "KEYGATE_TEST_REDIS"

// OnCluster says whether TestMain runs a Redis Cluster (ShapeEnv=cluster).
func OnCluster() bool { return os.Getenv(ShapeEnv) == "cluster" }

// TestMain is the TestMain of a package whose tests share one real Redis: it starts Redis with
// opts (in a temporary directory unless opts.Dir is set), calls setup with it, runs the tests,
// stops Redis and exits with the tests' status. If Redis cannot start, the package fails with
// a message that says how to install it; it never skips. With ShapeEnv=cluster the Redis is a
// Cluster (opts.TLS and Users are not supported then): setup gets its first node, whose
// UniversalOptions list every node.
func TestMain(m *testing.M, pkg string, opts Options, setup func(*Server)) {
	os.Exit(runTests(m, pkg, opts, setup))
}

// UniversalOptions are the options of a client of s, plaintext: with TestMain on a Cluster, a
// Cluster client of every node.
func (s *Server) UniversalOptions() *redis.UniversalOptions {
	if s.cluster != nil {
		return &redis.UniversalOptions{Addrs: s.cluster.Addrs(), IsClusterMode: true}
	}
	return &redis.UniversalOptions{Addrs: []string{s.Addr}}
}

func runTests(m *testing.M, pkg string, opts Options, setup func(*Server)) int {
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "keygate-redis-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, pkg, "tests:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	}
	var srv *Server
	var err error
	switch shape := os.Getenv(ShapeEnv); shape {
	case "", "standalone":
		srv, err = Start(context.Background(), opts)
		if srv != nil {
			defer srv.Stop()
		}
	case "cluster":
		var c *Cluster
		c, err = StartCluster(context.Background(), ClusterOptions{Dir: opts.Dir, Masters: 3, ReplicasPerMaster: 1, AppendOnly: opts.AppendOnly})
		if c != nil {
			defer c.Stop()
			srv = c.Nodes[0]
			srv.cluster = c
		}
	default:
		err = fmt.Errorf("%s=%q: want standalone or cluster", ShapeEnv, shape)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s tests need a real Redis (`make tools` installs one, or `apt-get install -y redis-server`): %v\n", pkg, err)
		return 1
	}
	if setup != nil {
		setup(srv)
	}
	return m.Run()
}

// ForEachMaster calls f with a client of every master of rdb: rdb itself when it is one
// server's client, each master in turn with a Cluster. SCAN, FLUSHALL and the like reach one
// node only; a test that means all keys goes through this.
func ForEachMaster(ctx context.Context, rdb redis.UniversalClient, f func(*redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.Client:
		return f(c)
	case *redis.ClusterClient:
		var mu sync.Mutex // ForEachMaster runs the masters side by side
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return f(m)
		})
	}
	return fmt.Errorf("unsupported Redis client %T", rdb)
}

// Keys are every key of rdb (every master's with a Cluster) that match pattern, by SCAN.
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var keys []string
	err := ForEachMaster(ctx, rdb, func(c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return iter.Err()
	})
	return keys, err
}
