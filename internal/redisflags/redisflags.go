// Package redisflags gives every command the same Redis flags and the client they describe:
// the address (a list for Cluster or Sentinel; --redis-cluster for a Cluster behind one
// address), the database, the Sentinel master, an ACL user
// and its password, TLS with a CA and a client certificate; and the readiness check of a server
// that depends on Redis.
//
// Passwords never come from the command line, where ps and shell history show them: only from
// a file (--redis-password-file) or the flag's environment variable (EXTAUTHZ_REDIS_PASSWORD);
// --redis-password is defined so that the variable exists, and refused as an argument
// (flagenv.Secret).
package redisflags

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/redisack"
)

// Config is the parsed Redis flags. Embed it in a command's config.
type Config struct {
	RedisAddresses  []string
	RedisMasterName string
	// RedisCluster: Redis Cluster even with one address (a list of several is Cluster anyway).
	RedisCluster bool
	RedisDB      int
	// RedisUsername and RedisPassword authenticate to the data nodes (AUTH, an ACL user when
	// the name is set); RedisSentinel* to the Sentinels, which have their own users.
	RedisUsername, RedisPassword                 string
	RedisSentinelUsername, RedisSentinelPassword string
	// RedisTLS is the client's TLS, nil for plaintext.
	RedisTLS *tls.Config
	// Acks is how many replicas a write waits for (RegisterAcks; the zero value when a
	// command only reads).
	Acks redisack.Acks

	addresses                      string
	password, sentinelPassword     flagenv.Secret
	passwordFile, sentinelPassFile string
	tls                            tlsFlags
}

type tlsFlags struct {
	enabled                               bool
	caFile, certFile, keyFile, serverName string
}

// Register adds the flags to fs; call Parse after fs.Parse.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.addresses, "redis-address", "127.0.0.1:6379", "Redis address; a comma-separated list for Redis Cluster or Sentinel")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "Redis Cluster even with one --redis-address (e.g. one Service in front of the nodes); several addresses without --redis-master-name are Cluster anyway")
	fs.IntVar(&c.RedisDB, "redis-db", 0, "Redis database number (standalone only)")
	fs.StringVar(&c.RedisMasterName, "redis-master-name", "", "Sentinel master name (Sentinel only)")
	fs.StringVar(&c.RedisUsername, "redis-username", "", "Redis ACL user; empty: the default user")
	c.password.Hint = "put it in a file named by --redis-password-file"
	fs.Var(&c.password, "redis-password", "Redis password: from this environment variable only, never the command line (or use --redis-password-file)")
	fs.StringVar(&c.passwordFile, "redis-password-file", "", "file holding the Redis password (one trailing newline is ignored)")
	fs.StringVar(&c.RedisSentinelUsername, "redis-sentinel-username", "", "ACL user on the Sentinels (Sentinel only)")
	c.sentinelPassword.Hint = "put it in a file named by --redis-sentinel-password-file"
	fs.Var(&c.sentinelPassword, "redis-sentinel-password", "Sentinels' password: from this environment variable only (or use --redis-sentinel-password-file)")
	fs.StringVar(&c.sentinelPassFile, "redis-sentinel-password-file", "", "file holding the Sentinels' password (Sentinel only)")
	fs.BoolVar(&c.tls.enabled, "redis-tls", false, "reach Redis over TLS (implied by --redis-ca-file, --redis-client-cert-file and --redis-tls-server-name)")
	fs.StringVar(&c.tls.caFile, "redis-ca-file", "", "CA (PEM) that signed Redis's certificate; empty: the system's CAs")
	fs.StringVar(&c.tls.certFile, "redis-client-cert-file", "", "client certificate (PEM) for Redis's tls-auth-clients; read again for every new connection")
	fs.StringVar(&c.tls.keyFile, "redis-client-key-file", "", "key of --redis-client-cert-file")
	fs.StringVar(&c.tls.serverName, "redis-tls-server-name", "", "name Redis's certificate must carry; empty: the host of each address")
}

// RegisterAcks adds the flags of a command that writes: how many replicas acknowledge a write
// before it is reported done. Only keystore writes; extauthz's activity batches are
// best-effort timestamps that a failover may lose without harm, so it does not wait.
func (c *Config) RegisterAcks(fs *flag.FlagSet) {
	fs.IntVar(&c.Acks.Replicas, "redis-min-replica-acks", 0, "replicas that must acknowledge (WAIT) every write before it is reported done (with Redis Cluster, replicas of the master of the write's slot); 0: acknowledged means on the master only, and a failover may lose the last writes")
	fs.DurationVar(&c.Acks.Timeout, "redis-replica-ack-timeout", time.Second, "how long a write waits for --redis-min-replica-acks replicas before it fails as unavailable (the write is then on the master, its survival unknown)")
}

// Parse checks the flags: it fills RedisAddresses, reads the password files and builds
// RedisTLS. Call it after fs.Parse.
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
	if err := c.checkAcks(); err != nil {
		return err
	}
	var err error
	if c.RedisPassword, err = password(c.password.Value, c.passwordFile, "redis-password"); err != nil {
		return err
	}
	if c.RedisSentinelPassword, err = password(c.sentinelPassword.Value, c.sentinelPassFile, "redis-sentinel-password"); err != nil {
		return err
	}
	c.RedisTLS, err = c.tls.config()
	return err
}

// checkAcks refuses acknowledgements that cannot be honoured, and a Cluster with a database
// or a master name (Cluster has database 0 only, and no Sentinel master).
func (c *Config) checkAcks() error {
	switch {
	case c.Acks.Replicas < 0:
		return fmt.Errorf("--redis-min-replica-acks %d: want 0 or more", c.Acks.Replicas)
	case c.Acks.Replicas > 0 && c.Acks.Timeout <= 0:
		return fmt.Errorf("--redis-replica-ack-timeout %s: want more than 0 (WAIT 0 would wait forever)", c.Acks.Timeout)
	case c.RedisCluster && c.RedisMasterName != "":
		return errors.New("--redis-cluster and --redis-master-name: Redis Cluster has no Sentinel master; give one")
	case c.RedisCluster && c.RedisDB != 0:
		return fmt.Errorf("--redis-db %d with --redis-cluster: Redis Cluster has database 0 only", c.RedisDB)
	}
	return nil
}

// password is the password of the environment (fromEnv) or of file; both at once is a mistake
// the user should hear about rather than have one silently win.
func password(fromEnv, file, flagName string) (string, error) {
	if file == "" {
		return fromEnv, nil
	}
	if fromEnv != "" {
		return "", fmt.Errorf("--%s-file and --%s (its environment variable) are both set: give one", flagName, flagName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", flagName, err)
	}
	// `echo secret > file` and Kubernetes Secrets differ by a newline; neither means it.
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("--%s-file %s is empty", flagName, file)
	}
	return p, nil
}

// ClientCertFile is --redis-client-cert-file ("" when unset), for the certificate expiry metric.
func (c Config) ClientCertFile() string { return c.tls.certFile }

// config is the client TLS of the flags, nil when none asks for TLS.
func (t tlsFlags) config() (*tls.Config, error) {
	if !t.enabled && t.caFile == "" && t.certFile == "" && t.keyFile == "" && t.serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("--redis-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--redis-ca-file %s: no PEM certificate in it", t.caFile)
		}
	}
	if (t.certFile == "") != (t.keyFile == "") {
		return nil, errors.New("--redis-client-cert-file and --redis-client-key-file go together")
	}
	if t.certFile != "" {
		// Checked now, so that a bad pair fails at start-up, and read again for every new
		// connection (pooled, so rarely), so that a rotated certificate is picked up.
		if _, err := tls.LoadX509KeyPair(t.certFile, t.keyFile); err != nil {
			return nil, fmt.Errorf("--redis-client-cert-file: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
			if err != nil {
				return nil, fmt.Errorf("--redis-client-cert-file: %w", err)
			}
			return &cert, nil
		}
	}
	return cfg, nil
}

// Options are the client options of the flags; callers add timeouts and pool sizes.
func (c *Config) Options() *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs: c.RedisAddresses, DB: c.RedisDB, MasterName: c.RedisMasterName, IsClusterMode: c.RedisCluster,
		Username: c.RedisUsername, Password: c.RedisPassword,
		SentinelUsername: c.RedisSentinelUsername, SentinelPassword: c.RedisSentinelPassword,
		TLSConfig: c.RedisTLS,
	}
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
