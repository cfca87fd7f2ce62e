package e2e

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/redisflags"
)

// redisClient is a client of the platform's Redis, which speaks TLS only and knows only an ACL
// user (localdev.RedisArgs): a test reads and writes it as the components do.
func redisClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb, err := platform.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	return rdb
}

// TestRedisIsReachedOnlyOverTLSAsTheACLUser: the platform's Redis is set up as
// keystore/README.md's example (TLS only, client certificates, the default user off), and
// every other test passing proves keystore and extauthz work with it. Here: a plaintext client
// gets no answer, the ACL user with a wrong password is refused, and the password is in no log.
func TestRedisIsReachedOnlyOverTLSAsTheACLUser(t *testing.T) {
	ctx := context.Background()
	first, _, _ := strings.Cut(platform.RedisAddr, ",") // one node of a Cluster
	plain := redis.NewClient(&redis.Options{Addr: first, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a plaintext client reached Redis")
	}

	rdb := redisClient(t)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("the components' settings: %v", err)
	}
	password, err := os.ReadFile(filepath.Join(platform.Dir, "pki", "redis-password"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := withWrongPassword(t)
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("a wrong password: %v, want WRONGPASS", err)
	}

	logs, err := filepath.Glob(filepath.Join(platform.Dir, "logs", "*"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("logs: %v %v", logs, err)
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), strings.TrimSpace(string(password))) {
			t.Errorf("%s holds the Redis password", l)
		}
	}
}

// withWrongPassword is a client with the components' settings but another password.
func withWrongPassword(t *testing.T) redis.UniversalClient {
	t.Helper()
	wrongFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrongFile, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c redisflags.Config
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse(append(platform.RedisArgs(), "--redis-password-file", wrongFile)); err != nil {
		t.Fatal(err)
	}
	if err := c.Parse(); err != nil {
		t.Fatal(err)
	}
	opts := c.Options()
	opts.MaxRetries = -1
	return redis.NewUniversalClient(opts)
}
