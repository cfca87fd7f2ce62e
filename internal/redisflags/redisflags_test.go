package redisflags

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisack"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

// parse reads args and the environment (prefix T) as a command does.
func parse(args ...string) (*Config, error) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Register(fs)
	c.RegisterAcks(fs)
	if err := flagenv.Parse(fs, "T", args); err != nil {
		return nil, err
	}
	return &c, c.Parse()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type parseCase struct {
	args    []string
	env     map[string]string
	check   func(*Config) bool
	wantErr string
}

// TestParseReplicaAcks: keystore's --redis-min-replica-acks, and the Cluster flags' conflicts.
func TestParseReplicaAcks(t *testing.T) {
	runParseCases(t, map[string]parseCase{
		"no replica acks by default": {check: func(c *Config) bool { return c.Acks.Replicas == 0 && c.Acks.Timeout == time.Second }},
		"replica acks from flags": {args: []string{"--redis-min-replica-acks", "2", "--redis-replica-ack-timeout", "250ms"},
			check: func(c *Config) bool { return c.Acks == redisack.Acks{Replicas: 2, Timeout: 250 * time.Millisecond} }},
		"replica acks from env": {env: map[string]string{"T_REDIS_MIN_REPLICA_ACKS": "1", "T_REDIS_REPLICA_ACK_TIMEOUT": "3s"},
			check: func(c *Config) bool { return c.Acks == redisack.Acks{Replicas: 1, Timeout: 3 * time.Second} }},
		"replica acks with sentinel": {args: []string{"--redis-address", "s1:26379,s2:26379", "--redis-master-name", "m", "--redis-min-replica-acks", "1"},
			check: func(c *Config) bool { return c.Acks.Replicas == 1 }},
		"replica acks with cluster": {args: []string{"--redis-address", "n1:6379,n2:6379", "--redis-min-replica-acks", "1"},
			check: func(c *Config) bool { return c.Acks.Replicas == 1 && len(c.Options().Addrs) == 2 }},
		"cluster behind one address": {args: []string{"--redis-address", "redis:6379", "--redis-cluster"},
			check: func(c *Config) bool { return c.Options().IsClusterMode }},
		"cluster with a master name": {args: []string{"--redis-address", "n1:6379", "--redis-cluster", "--redis-master-name", "m"},
			wantErr: "--redis-cluster and --redis-master-name"},
		"cluster with a database": {args: []string{"--redis-address", "n1:6379", "--redis-cluster", "--redis-db", "2"},
			wantErr: "Redis Cluster has database 0 only"},
		"negative replica acks": {args: []string{"--redis-min-replica-acks", "-1"}, wantErr: "--redis-min-replica-acks -1: want 0 or more"},
		"zero ack timeout":      {args: []string{"--redis-min-replica-acks", "1", "--redis-replica-ack-timeout", "0s"}, wantErr: "WAIT 0 would wait forever"},
	})
}

func TestParse(t *testing.T) {
	pw := writeFile(t, "pw", "from-file\n")
	runParseCases(t, map[string]parseCase{
		"plaintext by default": {check: func(c *Config) bool { return c.RedisTLS == nil && c.RedisPassword == "" }},
		"password from a file": {args: []string{"--redis-password-file", pw, "--redis-username", "keygate"}, check: func(c *Config) bool {
			o := c.Options()
			return o.Password == "from-file" && o.Username == "keygate"
		}},
		"password from env": {env: map[string]string{"T_REDIS_PASSWORD": "from-env"}, check: func(c *Config) bool { return c.Options().Password == "from-env" }},
		"sentinel": {args: []string{"--redis-address", "s1:26379,s2:26379", "--redis-master-name", "mymaster", "--redis-sentinel-username", "sentinel"},
			env: map[string]string{"T_REDIS_SENTINEL_PASSWORD": "s"}, check: func(c *Config) bool {
				o := c.Options()
				return len(o.Addrs) == 2 && o.MasterName == "mymaster" && o.SentinelUsername == "sentinel" && o.SentinelPassword == "s"
			}},
		"tls flag":              {args: []string{"--redis-tls"}, check: func(c *Config) bool { return c.RedisTLS != nil && c.RedisTLS.RootCAs == nil }},
		"tls implied by a name": {args: []string{"--redis-tls-server-name", "redis.internal"}, check: func(c *Config) bool { return c.RedisTLS.ServerName == "redis.internal" }},
		"password on the command line": {args: []string{"--redis-password", "hunter22"},
			wantErr: "--redis-password is never taken on the command line (it would show in shell history and ps): put it in a file named by --redis-password-file, or set the environment variable T_REDIS_PASSWORD"},
		"sentinel password on the command line": {args: []string{"--redis-sentinel-password=hunter22"}, wantErr: "--redis-sentinel-password-file, or set the environment variable T_REDIS_SENTINEL_PASSWORD"},
		"file and env":                          {args: []string{"--redis-password-file", pw}, env: map[string]string{"T_REDIS_PASSWORD": "x"}, wantErr: "--redis-password-file and --redis-password (its environment variable) are both set: give one"},
		"missing password file":                 {args: []string{"--redis-password-file", "/nonexistent/pw"}, wantErr: "--redis-password-file: open /nonexistent/pw"},
		"empty password file":                   {args: []string{"--redis-password-file", writeFile(t, "empty", "\n")}, wantErr: "is empty"},
		"cert without key":                      {args: []string{"--redis-client-cert-file", "c.crt"}, wantErr: "--redis-client-cert-file and --redis-client-key-file go together"},
		"ca file without a CA":                  {args: []string{"--redis-ca-file", pw}, wantErr: "no PEM certificate in it"},
	})
}

// runParseCases parses each case's arguments and environment and checks the result or error;
// an error never shows a password.
func runParseCases(t *testing.T, cases map[string]parseCase) {
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := parse(tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "from-file") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

// TestTLSAndACLUser reaches a real redis-server that speaks only TLS, wants a client certificate
// and has the default user off, as a production Redis should: the flags' client works with the
// CA, a client certificate, the ACL user and its password from a file or the environment; each
// missing piece fails with the error a user would see, and a plaintext client gets nothing.
func TestTLSAndACLUser(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("redis-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir(), TLS: ca, Users: map[string]string{"keygate": "correct-horse"}})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS (make tools installs one): %v", err)
	}
	defer srv.Stop()
	client, err := ca.Client("keygate")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := client.Write(t.TempDir(), "client")
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := pki.NewCA("another-ca")
	otherCAFile := writeFile(t, "other-ca.crt", string(otherCA.CertPEM))
	good := writeFile(t, "pw", "correct-horse\n")
	bad := writeFile(t, "bad-pw", "battery-staple\n")
	base := []string{"--redis-address", srv.Addr, "--redis-ca-file", srv.CAFile}
	cert := []string{"--redis-client-cert-file", certFile, "--redis-client-key-file", keyFile}
	user := []string{"--redis-username", "keygate"}
	for name, tc := range map[string]struct {
		args    [][]string
		env     map[string]string
		wantErr string // empty: SET and GET work
	}{
		"user, password file":     {args: [][]string{base, cert, user, {"--redis-password-file", good}}},
		"user, password from env": {args: [][]string{base, cert, user}, env: map[string]string{"T_REDIS_PASSWORD": "correct-horse"}},
		"no client certificate":   {args: [][]string{base, user, {"--redis-password-file", good}}, wantErr: "certificate required"},
		"wrong password":          {args: [][]string{base, cert, user, {"--redis-password-file", bad}}, wantErr: "WRONGPASS invalid username-password pair"},
		"no user":                 {args: [][]string{base, cert}, wantErr: "NOAUTH Authentication required"},
		"server from another CA":  {args: [][]string{{"--redis-address", srv.Addr, "--redis-ca-file", otherCAFile}, cert, user, {"--redis-password-file", good}}, wantErr: "certificate signed by unknown authority"},
		"plaintext":               {args: [][]string{{"--redis-address", srv.Addr}, user, {"--redis-password-file", good}}, wantErr: "EOF"}, // Redis hangs up on a client that does not start TLS
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := setAndGet(ctx, t, slices.Concat(tc.args...))
			t.Logf("client error: %v", err)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("SET and GET over TLS: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// setAndGet parses args, and writes and reads a value with the client they describe.
func setAndGet(ctx context.Context, t *testing.T, args []string) error {
	t.Helper()
	c, err := parse(args...)
	if err != nil {
		t.Fatal(err)
	}
	opts := c.Options()
	opts.MaxRetries = -1 // the first answer is what a user sees
	rdb := redis.NewUniversalClient(opts)
	defer rdb.Close()
	if err := rdb.Set(ctx, "redisflags-test", "over tls", 0).Err(); err != nil {
		return err
	}
	if got, err := rdb.Get(ctx, "redisflags-test").Result(); err != nil || got != "over tls" {
		t.Fatalf("GET = %q, %v; want what SET wrote", got, err)
	}
	return nil
}
