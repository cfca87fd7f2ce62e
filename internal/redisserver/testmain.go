package redisserver

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain is the TestMain of a package whose tests share one real Redis: it starts Redis with
// opts (in a temporary directory unless opts.Dir is set), calls setup with it, runs the tests,
// stops Redis and exits with the tests' status. If Redis cannot start, the package fails with
// a message that says how to install it; it never skips.
func TestMain(m *testing.M, pkg string, opts Options, setup func(*Server)) {
	os.Exit(runTests(m, pkg, opts, setup))
}

func runTests(m *testing.M, pkg string, opts Options, setup func(*Server)) int {
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "keygate-redis-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, pkg, "tests:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	}
	srv, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s tests need a real Redis (`make tools` installs one, or `apt-get install -y redis-server`): %v\n", pkg, err)
		return 1
	}
	defer srv.Stop()
	if setup != nil {
		setup(srv)
	}
	return m.Run()
}
