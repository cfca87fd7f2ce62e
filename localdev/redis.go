package localdev

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisflags"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

// RedisUser is the ACL user keystore and extauthz log in to Redis as.
const RedisUser = "keygate"

// startRedis starts the key store's Redis as production should run it (keystore/README.md's
// example): TLS only, with client certificates from its own CA, and the default user off, so
// that the components log in as RedisUser with a password they read from a file. The flags
// that reach it are RedisArgs.
func (p *Platform) startRedis(ctx context.Context) error {
	p.step("starting Redis (TLS, ACL user %s)", RedisUser)
	ca, err := pki.NewCA("keygate local Redis CA")
	if err != nil {
		return err
	}
	client, err := ca.Client(RedisUser)
	if err != nil {
		return err
	}
	if _, _, err := client.Write(p.path("pki"), "redis-client"); err != nil {
		return err
	}
	password := rand.Text()
	if err := os.WriteFile(p.redisPasswordFile(), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	users := map[string]string{RedisUser: password}
	switch {
	case p.opts.Sentinel && p.opts.RedisCluster:
		return errors.New("Options.Sentinel and Options.RedisCluster: choose one")
	case p.opts.Sentinel:
		return p.startSentinelRedis(ctx, ca, users)
	case p.opts.RedisCluster:
		return p.startClusterRedis(ctx, ca, users)
	}
	// Append-only with an fsync per write: a crash or restart of Redis loses no access
	// key that was acknowledged (e2e restarts it to prove this).
	p.redis, err = redisserver.Start(ctx, redisserver.Options{Dir: p.path("redis"), AppendOnly: true, TLS: ca,
		Users: users})
	if err == nil {
		p.RedisAddr = p.redis.Addr
	}
	return err
}

func (p *Platform) redisPasswordFile() string { return p.path("pki", "redis-password") }

// RedisArgs are the --redis-* flags of keystore and extauthz for the platform's Redis: the
// password travels as a file name, never itself.
func (p *Platform) RedisArgs() []string {
	args := []string{"--redis-address", p.RedisAddr, "--redis-username", RedisUser, "--redis-password-file", p.redisPasswordFile(),
		"--redis-ca-file", p.redis.CAFile,
		"--redis-client-cert-file", p.path("pki", "redis-client.crt"), "--redis-client-key-file", p.path("pki", "redis-client.key")}
	if p.opts.Sentinel {
		args = append(args, "--redis-master-name", SentinelMaster)
	}
	return args
}

// RedisEnv are RedisArgs as environment variables of a command with the given prefix
// (KEYSTORE_REDIS_ADDRESS=...), for commands whose own flags should win.
func (p *Platform) RedisEnv(prefix string) []string {
	args := p.RedisArgs()
	env := make([]string, 0, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		env = append(env, flagenv.EnvName(prefix, strings.TrimPrefix(args[i], "--"))+"="+args[i+1])
	}
	return env
}

// RedisClient is a client of the platform's Redis, configured by RedisArgs through the same
// flags as the components.
func (p *Platform) RedisClient() (redis.UniversalClient, error) {
	opts, err := p.redisOptions()
	if err != nil {
		return nil, err
	}
	return redisflags.NewClient(opts), nil
}

// redisOptions are the client options of RedisArgs, parsed by the components' own flags.
func (p *Platform) redisOptions() (*redis.UniversalOptions, error) {
	var c redisflags.Config
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse(p.RedisArgs()); err != nil {
		return nil, err
	}
	if err := c.Parse(); err != nil {
		return nil, err
	}
	return c.Options(), nil
}

// RestartRedis kills Redis abruptly (SIGKILL, as a crash or an OOM kill would) and starts it
// again on the same address with the same append-only file. extauthz and keystore keep
// running and reconnect on their own; until they have, requests may fail. With Sentinel or
// Cluster it crashes the first node started, which may be a master or a replica by now.
func (p *Platform) RestartRedis(ctx context.Context) error {
	p.step("restarting Redis (SIGKILL)")
	return p.redis.Crash(ctx)
}

// RedisShape says how the platform runs Redis: "standalone", "sentinel" or "cluster".
func (p *Platform) RedisShape() string {
	switch {
	case p.opts.Sentinel:
		return "sentinel"
	case p.opts.RedisCluster:
		return "cluster"
	}
	return "standalone"
}

// RedisServers are the platform's Redis servers by address (the Sentinels left out), for
// measuring them; the one Redis when standalone.
func (p *Platform) RedisServers() []*redisserver.Server {
	if len(p.redisNodes) > 0 {
		return p.redisNodes
	}
	return []*redisserver.Server{p.redis}
}
