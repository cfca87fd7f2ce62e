// Command dashboard writes keygate's Grafana dashboard to manifests/helm/keygate/files/dashboard.json
// (or the file given as its only argument): `go run ./manifests/monitoring/cmd/dashboard`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/manifests/monitoring"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("usage: dashboard [FILE] (default %s)", monitoring.DashboardFile)
	}
	out := ""
	if len(args) == 1 {
		out = args[0]
	} else {
		root, err := toolbin.RepoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, monitoring.DashboardFile)
	}
	data, err := monitoring.Dashboard()
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}
