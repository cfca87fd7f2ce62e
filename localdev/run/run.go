// Package run is the `make run` command: the whole platform on this machine, ready for
// kubectl, until Ctrl-C.
package run

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/ops"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/localdev"
)

// Main parses args, starts the platform, prints how to use it and waits for SIGINT/SIGTERM.
func Main(args []string, out io.Writer) error {
	dir, port, err := parseFlags(args)
	if err != nil {
		return err
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	state, err := freshState(root, dir)
	if err != nil {
		return err
	}

	ctx, stop := ops.SignalContext()
	defer stop()
	started := time.Now()
	p, err := localdev.Start(ctx, localdev.Options{Dir: state.dir, EdgePort: port, Progress: out, SSO: true})
	if err != nil {
		return fmt.Errorf("%w\n(logs of every component are in %s)", err, filepath.Join(state.dir, "logs"))
	}
	defer func() {
		fmt.Fprintln(out, "==> stopping")
		os.Remove(state.kubeconfig)
		os.Remove(state.adminKey)
		os.Remove(state.redisEnv)
		p.Stop()
		fmt.Fprintln(out, "==> stopped")
	}()
	// Written last, so that its presence means the platform is ready.
	if err := p.WriteKubeconfig(state.kubeconfig, p.AdminKey); err != nil {
		return err
	}
	if err := os.WriteFile(state.adminKey, []byte(p.AdminKey+"\n"), 0o600); err != nil {
		return err
	}
	// The keystore command's Redis settings (file names, never the password itself), so that
	// `set -a; . .run/redis.env` lets it reach the TLS-only Redis as the platform's ACL user.
	if err := os.WriteFile(state.redisEnv, []byte(strings.Join(p.RedisEnv("KEYSTORE"), "\n")+"\n"), 0o600); err != nil {
		return err
	}
	demoPassword, err := p.RunKeystore(ctx, nil, "create-user", demoUser, "--groups", demoGroup, "--email", demoUser+"@example.com")
	if err != nil {
		return err
	}
	if err := p.GrantView(ctx, demoGroup); err != nil {
		return err
	}
	printReady(out, p, root, state, time.Since(started))
	printOIDC(out, p, root, state, strings.TrimSpace(demoPassword))
	<-ctx.Done()
	return nil
}

// parseFlags returns --dir and --port, refusing a port that is taken now rather than after the
// platform's slow start.
func parseFlags(args []string) (dir string, port int, err error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dirFlag := fs.String("dir", ".run", "directory for the platform's state (wiped at every start)")
	portFlag := fs.Int("port", 8443, "the edge's HTTPS port on 127.0.0.1")
	fs.Usage = flagenv.Usage(fs, "KEYGATE_RUN", "Usage: make run [ARGS='--port 9443'] (go run ./localdev/cmd/run)")
	if err := flagenv.Parse(fs, "KEYGATE_RUN", args); err != nil {
		return "", 0, err
	}
	port = *portFlag
	if port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("--port %d: want a TCP port number", port)
	}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return "", 0, fmt.Errorf("port %d is taken (%v): stop what uses it or choose another with `make run ARGS='--port 9443'`", port, err)
	} else {
		l.Close()
	}
	return *dirFlag, port, nil
}

// stateFiles are where the platform keeps its state, and the two files a user needs from it.
type stateFiles struct{ dir, kubeconfig, adminKey, redisEnv string }

// freshState empties dir (relative to root unless absolute): nothing from an earlier run (keys,
// etcd data) can confuse this one.
func freshState(root, dir string) (stateFiles, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	state := stateFiles{dir: dir, kubeconfig: filepath.Join(dir, "admin.kubeconfig"), adminKey: filepath.Join(dir, "admin.key"), redisEnv: filepath.Join(dir, "redis.env")}
	if err := os.RemoveAll(dir); err != nil {
		return stateFiles{}, err
	}
	return state, os.MkdirAll(dir, 0o755)
}

// relTo makes paths relative to root, for printing.
func relTo(root string) func(string) string {
	return func(path string) string {
		if r, err := filepath.Rel(root, path); err == nil {
			return r
		}
		return path
	}
}

// printReady prints where everything is and how to try it, with paths relative to root.
func printReady(out io.Writer, p *localdev.Platform, root string, state stateFiles, took time.Duration) {
	rel := relTo(root)
	fmt.Fprintf(out, `
keygate is running (ready in %.1fs).

  edge:        %s
  admin key:   %s   (also in %s)
  kubeconfig:  %s
               contexts: loft_demo, loft_staging, loft-vcluster_vc1_vcluster-demo_demo, loft-management
  logs:        %s
  redis:       %s   (TLS only, ACL user keygate: set -a; . %[9]s; set +a
               then .run/bin/keystore create-key --user NAME; docs/scopes.md)
  prometheus:  %[10]s   (scrapes xds, extauthz, keystore and Envoy; docs/observability.md)

Try:
  export PATH="$PWD/.tools/bin:$PATH"    # kubectl v1.36, installed by make
  kubectl --kubeconfig %[5]s --context loft_demo get namespaces
  kubectl --kubeconfig %[5]s --context loft-vcluster_vc1_vcluster-demo_demo auth whoami
  kubectl --kubeconfig %[5]s --context loft-management get ownedaccesskeys
  kubectl --kubeconfig %[5]s --context loft_demo exec -it demo-pod -- sh   (the kubelet stand-in's shell)
  kubectl --kubeconfig %[5]s --context loft_demo logs -f demo-pod
  kubectl --kubeconfig %[5]s --context loft_demo port-forward demo-pod 8007:7   (an echo server)
  curl --cacert %[8]s -H "Authorization: Bearer $(cat %[4]s)" %[2]s/grafana/demo/api/health

`, took.Seconds(), p.EdgeURL, p.AdminKey, rel(state.adminKey), rel(state.kubeconfig),
		rel(filepath.Join(state.dir, "logs")), p.RedisAddr, rel(filepath.Join(state.dir, "pki", "edge-ca.crt")), rel(state.redisEnv), p.PrometheusURL)
}

// demoUser is the user store's user `make run` makes for the quick start (keygate login) and
// the OIDC recipe; its group may read every cluster, so that the quick start's kubectl get
// namespaces answers.
const (
	demoUser  = "demo"
	demoGroup = "demo-users"
)

// printOIDC prints a walk through the OIDC provider that works as printed: the demo client's
// authorization URL (with a PKCE challenge made now), the sign-in choices, and the token
// request with the matching verifier.
func printOIDC(out io.Writer, p *localdev.Platform, root string, state stateFiles, password string) {
	verifier := oauth2.GenerateVerifier()
	cfg := &oauth2.Config{ClientID: localdev.DemoOIDCClient, RedirectURL: "http://127.0.0.1:8000/callback",
		Endpoint: oauth2.Endpoint{AuthURL: p.EdgeURL + "/oidc/authorize"}, Scopes: []string{"openid", "profile", "email", "groups", "offline_access"}}
	ca := relTo(root)(filepath.Join(state.dir, "pki", "edge-ca.crt"))
	fmt.Fprintf(out, `Try the OIDC provider (issuer %[1]s/oidc; client %[2]s: public, PKCE S256, redirect http://127.0.0.1:8000/callback):
  curl --cacert %[3]s %[1]s/oidc/.well-known/openid-configuration
  1. open in a browser (it does not know the edge's CA: accept the warning, or import %[3]s):
     %[4]s
  2. sign in as %[5]s / %[6]s, or "Log in with Test IdP" as %[7]s / %[8]s (the test IdP, a
     single sign-on connector); the browser lands on http://127.0.0.1:8000/callback?code=CODE&state=demo
     (nothing listens there: copy CODE from the address bar)
  3. curl --cacert %[3]s %[1]s/oidc/oauth/token -d grant_type=authorization_code -d client_id=%[2]s \
       -d redirect_uri=http://127.0.0.1:8000/callback -d code_verifier=%[9]s -d code=CODE
     answers the ID, access and refresh tokens; kubectl --context loft-management get ownedaccesskeys
     lists the refresh token (type OIDCRefreshToken); deleting it revokes it.

Ctrl-C stops everything.
`, p.EdgeURL, localdev.DemoOIDCClient, ca, cfg.AuthCodeURL("demo", oauth2.S256ChallengeOption(verifier)),
		demoUser, password, localdev.SSOUsers[0], localdev.SSOPassword, verifier)
}
