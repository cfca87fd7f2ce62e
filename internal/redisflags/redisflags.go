// Package redisflags gives every command the same Redis flags (--redis-address, a list for
// Cluster or Sentinel, --redis-password, --redis-db, --redis-master-name) and the client they
// describe, and the readiness check of a server that depends on it.
package redisflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Config is the parsed Redis flags. Embed it in a command's config.
type Config struct {
	RedisAddresses                 []string
	RedisPassword, RedisMasterName string
	RedisDB                        int

	addresses string
}

// Register adds the flags to fs; call Parse after fs.Parse.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.addresses, "redis-address", "127.0.0.1:6379", "Redis address; a comma-separated list for Redis Cluster or Sentinel")
	fs.StringVar(&c.RedisPassword, "redis-password", "", "Redis password")
	fs.IntVar(&c.RedisDB, "redis-db", 0, "Redis database number (standalone only)")
	fs.StringVar(&c.RedisMasterName, "redis-master-name", "", "Sentinel master name (Sentinel only)")
}

// Parse checks --redis-address and fills RedisAddresses.
func (c *Config) Parse() error {
	c.RedisAddresses = nil
	for _, a := range strings.Split(c.addresses, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("--redis-address %q: want host:port", a)
			}
			c.RedisAddresses = append(c.RedisAddresses, a)
		}
	}
	if len(c.RedisAddresses) == 0 {
		return errors.New("--redis-address is empty")
	}
	return nil
}

// Options are the client options of the flags; callers add timeouts and pool sizes.
func (c *Config) Options() *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: c.RedisAddresses, Password: c.RedisPassword, DB: c.RedisDB, MasterName: c.RedisMasterName}
}

// Ready is a server's /readyz check when its backend is Redis: ready while Redis answers.
func Ready(rdb redis.UniversalClient) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	}
}
