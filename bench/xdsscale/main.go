// Command xdsscale measures how xds and Envoy scale with the number of targets (issue 5): the
// time from empty to serving every target, the time from a one-target change to Envoy serving
// it, xds's memory and CPU, and the size of the xDS update for a one-target change, with N
// connected clusters from the targets file and from Cluster objects in a real kube-apiserver,
// all served by one HTTPS upstream under a TLS server name each. See bench/README.md.
//
//	go run ./bench/xdsscale [-sources file,kubernetes] [-targets 100,1000,10000] [-samples 50] [-keep] [-cpu-profile 30s]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/sizes"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

func main() {
	targets := flag.String("targets", "100,1000,10000", "comma-separated numbers of targets, each run with a fresh xds and Envoy")
	samples := flag.Int("samples", 50, "random targets requested through Envoy (besides the first and the last) before it counts as serving")
	sources := flag.String("sources", "file,kubernetes", "comma-separated sources of targets to measure: file (a targets file), kubernetes (Cluster objects and Secrets in a real kube-apiserver)")
	keep := flag.Bool("keep", false, "keep the working directory (logs, targets files, xds's heap profiles) instead of removing it")
	cpuProfile := flag.Duration("cpu-profile", 0, "also take a CPU profile of xds for this long from its start (xds-cpu.pb.gz in the run's directory, with -keep); 0 takes none")
	flag.Parse()
	ns, err := sizes.Parse(*targets, 2)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdsscale: -targets: %v\n", err)
		os.Exit(2)
	}
	srcs := strings.Split(*sources, ",")
	for _, s := range srcs {
		if s != "file" && s != "kubernetes" {
			fmt.Fprintf(os.Stderr, "xdsscale: -sources: %q: want file or kubernetes\n", s)
			os.Exit(2)
		}
	}
	if err := run(srcs, ns, *samples, *keep, *cpuProfile); err != nil {
		fmt.Fprintf(os.Stderr, "xdsscale: %v\n", err)
		os.Exit(1)
	}
}

func run(srcs []string, ns []int, samples int, keep bool, cpuProfile time.Duration) error {
	envoyBin, err := requireTools(srcs)
	if err != nil {
		return err
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "keygate-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(os.Stderr, "working directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	xdsBin := filepath.Join(dir, "xds")
	if err := buildXDS(root, xdsBin); err != nil {
		return err
	}
	env, err := newBenchEnv(dir, envoyBin, xdsBin, samples)
	if err != nil {
		return err
	}
	env.cpuProfile = cpuProfile
	defer env.close()

	host, _ := os.Hostname()
	fmt.Printf("One run, %s, %s, %d CPUs, %s, xds built from %s.\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), envoyVersion(envoyBin), revision(root))
	for _, name := range srcs {
		var results []*result
		for _, n := range ns {
			var src targetSource = &fileSource{}
			if name == "kubernetes" {
				src = &kubeSource{caPEM: env.upstreamCA.CertPEM, certPEM: env.edgeClient.CertPEM, keyPEM: env.edgeClient.KeyPEM}
			}
			fmt.Fprintf(os.Stderr, "== %s source, %d targets\n", name, n)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
			r, err := env.measure(ctx, src, n)
			cancel()
			if err != nil {
				return fmt.Errorf("%s source, %d targets: %w (logs in %s)", name, n, err, dir)
			}
			results = append(results, r)
			// Print as we go: a later, larger run may fail or be interrupted.
			fmt.Fprintf(os.Stderr, "%s\n%s source so far:\n%s", r.summary(), name, table(results))
		}
		fmt.Printf("\n### Source: %s\n\n%s", name, table(results))
	}
	return nil
}

// requireTools finds Envoy, and kube-apiserver and etcd for the kubernetes source: missing
// tools fail here, before anything is built or started, with how to install them.
func requireTools(srcs []string) (envoyBin string, err error) {
	if envoyBin, err = toolbin.Path("envoy"); err != nil {
		return "", err
	}
	if slices.Contains(srcs, "kubernetes") {
		for _, t := range []string{"kube-apiserver", "etcd"} {
			if _, err := toolbin.Path(t); err != nil {
				return "", err
			}
		}
	}
	return envoyBin, nil
}

// buildXDS builds the xds command at the working tree's state, so that the bench measures the
// code as it is now. Others may be editing it: a tree that does not build is retried for a few
// minutes.
func buildXDS(root, out string) error {
	var last []byte
	for attempt := 1; attempt <= 5; attempt++ {
		cmd := exec.Command("go", "build", "-o", out, "./xds/cmd/xds")
		cmd.Dir = root
		var err error
		if last, err = cmd.CombinedOutput(); err == nil {
			return nil
		}
		fmt.Fprintf(os.Stderr, "go build ./xds/cmd/xds failed (attempt %d of 5), retrying in a minute:\n%s", attempt, last)
		if attempt < 5 {
			time.Sleep(time.Minute)
		}
	}
	return fmt.Errorf("go build ./xds/cmd/xds does not build:\n%s", last)
}

func envoyVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "Envoy (version unknown)"
	}
	// ".../envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
	_, v, ok := strings.Cut(string(out), "version: ")
	if parts := strings.Split(strings.TrimSpace(v), "/"); ok && len(parts) > 1 {
		return "Envoy " + parts[1]
	}
	return "Envoy"
}

// revision names the code the xds binary was built from: the commit, and whether xds/ had
// uncommitted changes (the working tree is what gets built).
func revision(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	if dirty, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "xds").Output(); err == nil && len(dirty) > 0 {
		rev += " with uncommitted changes in xds/"
	}
	return rev
}
