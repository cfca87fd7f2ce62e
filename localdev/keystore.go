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
)

// AdminGroup is keystore's --admin-group: its members see and manage every access key.
const AdminGroup = "keygate:admins"

// startKeystore starts `keystore serve`: the management API and the login endpoints, with a
// serving certificate of the platform CA, believing identity headers only from the edge's
// client certificate.
func (p *Platform) startKeystore(ctx context.Context, certs *kubeserver.Certs, xdsGRPC string) error {
	ports, err := proc.FreePorts(4)
	if err != nil {
		return err
	}
	p.keystoreAddrs.api, p.keystoreAddrs.auth, p.keystoreAddrs.http = addr(ports[0]), addr(ports[1]), addr(ports[2])
	p.keystoreAddrs.oidc = addr(ports[3])
	oidcArgs, err := p.oidcArgs(ctx)
	if err != nil {
		return err
	}
	serving, err := certs.CA.Server("keygate keystore", "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(p.path("pki"), "keystore-serving")
	if err != nil {
		return err
	}
	xdsArgs, err := p.keystoreXDSArgs(xdsGRPC)
	if err != nil {
		return err
	}
	oidcArgs = append(oidcArgs, xdsArgs...)
	p.step("starting keystore (management API, login, OIDC provider)")
	args := append([]string{"serve",
		"--address", p.keystoreAddrs.api, "--auth-address", p.keystoreAddrs.auth, "--http-address", p.keystoreAddrs.http,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--requestheader-client-ca-file", certs.CAFile, "--requestheader-allowed-names", kubeserver.EdgeUser,
		"--admin-group", AdminGroup, "--log-format", "text"}, append(append(oidcArgs, p.RedisArgs()...), p.opts.KeystoreArgs...)...)
	p.keystoreArgs = args
	return p.StartKeystore(ctx)
}

// StartKeystore (re)starts `keystore serve` with the arguments of the first start and waits
// until it is ready.
func (p *Platform) StartKeystore(ctx context.Context) error {
	q, err := proc.Start("keystore", p.logs, nil, filepath.Join(p.Bin, "keystore"), p.keystoreArgs...)
	if err != nil {
		return err
	}
	p.keystore.Store(q)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, q, "keystore", proc.HTTPReady("http://"+p.keystoreAddrs.http+"/readyz"))
}

// CreateKeyWithCommand creates an unscoped access key for user with the keystore command, the
// way an operator bootstraps one, and returns the plain key.
func (p *Platform) CreateKeyWithCommand(ctx context.Context, name, user string, extraArgs ...string) (string, error) {
	args := append(append([]string{"create-key", "--name", name, "--user", user}, p.RedisArgs()...), extraArgs...)
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("keystore create-key: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// RunKeystore runs the keystore command with args against the platform's Redis (its settings
// in KEYSTORE_REDIS_*, see RedisEnv; a --redis-* flag in args wins), with stdin as its standard
// input (nil: empty), and returns its standard output. An error carries its standard error.
func (p *Platform) RunKeystore(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(p.Bin, "keystore"), args...)
	cmd.Env = append(os.Environ(), p.RedisEnv("KEYSTORE")...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("keystore %s: %w: %s", strings.Join(args[:min(1, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// keystoreXDSArgs are the flags with which keystore reads the targets from xds (clusters and
// virtualclusterinstances): a client certificate of the control plane's CA, as Envoy has.
func (p *Platform) keystoreXDSArgs(xdsGRPC string) ([]string, error) {
	client, err := p.controlPlane.CA.Client("keygate-keystore")
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := client.Write(p.path("pki"), "control-plane-keystore")
	if err != nil {
		return nil, err
	}
	return []string{"--xds-address", xdsGRPC, "--xds-ca-file", p.controlPlane.CAFile,
		"--xds-client-cert-file", certFile, "--xds-client-key-file", keyFile}, nil
}
