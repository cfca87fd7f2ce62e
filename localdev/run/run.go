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
	"time"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/ops"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/localdev"
)

// Main parses args, starts the platform, prints how to use it and waits for SIGINT/SIGTERM.
func Main(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dir := fs.String("dir", ".run", "directory for the platform's state (wiped at every start)")
	port := fs.Int("port", 8443, "the edge's HTTPS port on 127.0.0.1")
	fs.Usage = flagenv.Usage(fs, "KEYGATE_RUN", "Usage: make run [ARGS='--port 9443'] (go run ./localdev/cmd/run)")
	if err := flagenv.Parse(fs, "KEYGATE_RUN", args); err != nil {
		return err
	}
	if *port <= 0 || *port > 65535 {
		return fmt.Errorf("--port %d: want a TCP port number", *port)
	}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port)); err != nil {
		return fmt.Errorf("port %d is taken (%v): stop what uses it or choose another with `make run ARGS='--port 9443'`", *port, err)
	} else {
		l.Close()
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	stateDir := *dir
	if !filepath.IsAbs(stateDir) {
		stateDir = filepath.Join(root, stateDir)
	}
	kubeconfig := filepath.Join(stateDir, "admin.kubeconfig")
	// Fresh state every time: nothing from an earlier run (keys, etcd data) can confuse this one.
	if err := os.RemoveAll(stateDir); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}

	ctx, stop := ops.SignalContext()
	defer stop()
	started := time.Now()
	p, err := localdev.Start(ctx, localdev.Options{Dir: stateDir, EdgePort: *port, Progress: out})
	if err != nil {
		return fmt.Errorf("%w\n(logs of every component are in %s)", err, filepath.Join(stateDir, "logs"))
	}
	defer func() {
		fmt.Fprintln(out, "==> stopping")
		os.Remove(kubeconfig)
		os.Remove(filepath.Join(stateDir, "admin.key"))
		p.Stop()
		fmt.Fprintln(out, "==> stopped")
	}()
	// Written last, so that its presence means the platform is ready.
	if err := p.WriteKubeconfig(kubeconfig, p.AdminKey); err != nil {
		return err
	}
	rel := func(path string) string {
		if r, err := filepath.Rel(root, path); err == nil {
			return r
		}
		return path
	}
	keyFile := filepath.Join(stateDir, "admin.key")
	if err := os.WriteFile(keyFile, []byte(p.AdminKey+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, `
keygate is running (ready in %.1fs).

  edge:        %s
  admin key:   %s   (also in %s)
  kubeconfig:  %s
               contexts: loft_demo, loft_staging, loft-vcluster_vc1_vcluster-demo_demo, loft-management
  logs:        %s
  redis:       %s   (.run/bin/keystore create-key --redis-address %[7]s --user NAME; docs/scopes.md)

Try:
  export PATH="$PWD/.tools/bin:$PATH"    # kubectl v1.36, installed by make
  kubectl --kubeconfig %[5]s --context loft_demo get namespaces
  kubectl --kubeconfig %[5]s --context loft-vcluster_vc1_vcluster-demo_demo auth whoami
  kubectl --kubeconfig %[5]s --context loft-management get ownedaccesskeys
  curl --cacert %[8]s -H "Authorization: Bearer $(cat %[4]s)" %[2]s/grafana/demo/api/health

Ctrl-C stops everything.
`, time.Since(started).Seconds(), p.EdgeURL, p.AdminKey, rel(keyFile), rel(kubeconfig),
		rel(filepath.Join(stateDir, "logs")), p.RedisAddr, rel(filepath.Join(stateDir, "pki", "edge-ca.crt")))
	<-ctx.Done()
	return nil
}
