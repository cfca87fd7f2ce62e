package faultload

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/localdev"
)

// Main is the TestMain of a fault package (name prefixes its messages): it starts the platform
// with opts (Dir and Progress are filled in), points the helpers at it (Setup), calls ready (may
// be nil) and runs the tests. The components' logs are kept when a test failed, and said where.
func Main(m *testing.M, name string, opts localdev.Options, ready func(*localdev.Platform) error) int {
	dir, err := os.MkdirTemp("", "keygate-"+name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts.Dir, opts.Progress = dir, io.Discard
	if testing.Verbose() {
		opts.Progress = os.Stderr
	}
	p, err := localdev.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot start the platform (`make tools` installs Envoy, Redis and the rest): %v\n(logs in %s)\n", name, err, filepath.Join(dir, "logs"))
		return 1
	}
	defer p.Stop()
	if err := Setup(p); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if ready != nil {
		if err := ready(p); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	if code := m.Run(); code != 0 {
		fmt.Fprintf(os.Stderr, "%s: component logs are in %s (kept because tests failed)\n", name, filepath.Join(dir, "logs"))
		return code
	}
	p.Stop()
	os.RemoveAll(dir)
	return 0
}
