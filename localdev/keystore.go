package localdev

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

// AdminGroup is keystore's --admin-group: its members see and manage every access key.
const AdminGroup = "keygate:admins"

// startKeystore starts `keystore serve`: the management API and the login endpoints, with a
// serving certificate of the platform CA, believing identity headers only from the edge's
// client certificate.
func (p *Platform) startKeystore(ctx context.Context, certs *kubeserver.Certs) error {
	ports, err := proc.FreePorts(3)
	if err != nil {
		return err
	}
	p.keystoreAddrs.api, p.keystoreAddrs.auth, p.keystoreAddrs.http = addr(ports[0]), addr(ports[1]), addr(ports[2])
	serving, err := certs.CA.Server("keygate keystore", "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(p.path("pki"), "keystore-serving")
	if err != nil {
		return err
	}
	p.step("starting keystore (management API and login)")
	p.keystore, err = proc.Start("keystore", p.logs, nil, filepath.Join(p.Bin, "keystore"), "serve",
		"--address", p.keystoreAddrs.api, "--auth-address", p.keystoreAddrs.auth, "--http-address", p.keystoreAddrs.http,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--requestheader-client-ca-file", certs.CAFile, "--requestheader-allowed-names", kubeserver.EdgeUser,
		"--admin-group", AdminGroup, "--redis-address", p.RedisAddr, "--log-format", "text")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, p.keystore, "keystore", proc.HTTPReady("http://"+p.keystoreAddrs.http+"/readyz"))
}

// startRedis starts the key store's Redis.
func (p *Platform) startRedis(ctx context.Context) error {
	p.step("starting Redis")
	// Append-only with an fsync per write: a crash or restart of Redis loses no access
	// key that was acknowledged (e2e restarts it to prove this).
	var err error
	p.redis, err = redisserver.Start(ctx, redisserver.Options{Dir: p.path("redis"), AppendOnly: true})
	if err == nil {
		p.RedisAddr = p.redis.Addr
	}
	return err
}

// CreateKeyWithCommand creates an unscoped access key for user with the keystore command, the
// way an operator bootstraps one, and returns the plain key.
func (p *Platform) CreateKeyWithCommand(ctx context.Context, name, user string, extraArgs ...string) (string, error) {
	args := append([]string{"create-key", "--redis-address", p.RedisAddr, "--name", name, "--user", user}, extraArgs...)
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("keystore create-key: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// RunKeystore runs the keystore command with args against the platform's Redis
// (KEYSTORE_REDIS_ADDRESS; a --redis-address in args wins), with stdin as its standard input
// (nil: empty), and returns its standard output. An error carries its standard error.
func (p *Platform) RunKeystore(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	cmd.Env = append(os.Environ(), "KEYSTORE_REDIS_ADDRESS="+p.RedisAddr)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("keystore %s: %w: %s", strings.Join(args[:min(1, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// RestartRedis kills Redis abruptly (SIGKILL, as a crash or an OOM kill would) and starts it
// again on the same address with the same append-only file. extauthz and keystore keep
// running and reconnect on their own; until they have, requests may fail.
func (p *Platform) RestartRedis(ctx context.Context) error {
	p.step("restarting Redis (SIGKILL)")
	return p.redis.Crash(ctx)
}
