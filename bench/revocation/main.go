// Command revocation measures how long a revoked access key keeps working at every extauthz
// replica: from the key store's acknowledgement of a delete or a disable to each replica's first
// refusal, with N replicas (built from the working tree) each under full Check load from a
// separate load-generator process, beside the same with idle replicas. One real Redis; every
// Check is sent over gRPC as Envoy's ext_authz filter sends it. Every answer is checked: a load
// Check that is not allowed, or an allowed answer from a replica that had already refused the
// revoked key, fails the run. See bench/README.md.
//
//	go run ./bench/revocation [-cells 10:load,10:idle,4:load,2:load,2:idle] [-revocations 200] [-rounds 2]
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cellSpec is one configuration: how many replicas, and whether they are under load.
type cellSpec struct {
	replicas int
	loaded   bool
	// rate, when positive, is the load's Checks per second per replica, sent whatever the
	// answers' pace (open loop): replicas with CPU to spare. 0 is the closed loop: all they
	// answer.
	rate int
}

func (c cellSpec) String() string {
	switch {
	case c.rate > 0:
		return fmt.Sprintf("%d at %d/s each", c.replicas, c.rate)
	case c.loaded:
		return fmt.Sprintf("%d under load", c.replicas)
	}
	return fmt.Sprintf("%d idle", c.replicas)
}

// settings are the command line.
type settings struct {
	cells       []cellSpec
	revocations int // per cell, over all rounds
	rounds      int
	conns       int // Checks in flight per loaded replica
	loadKeys    int // allowed keys the load cycles through
	gomaxprocs  int // each replica's GOMAXPROCS; 0 leaves Go's default
	warmup      time.Duration
	keep        bool
	noPolls     bool   // revoke without polling the replicas: extauthz's own figures only
	extauthz    string // a prebuilt extauthz, instead of building the working tree's
}

func main() {
	if runRole() {
		return
	}
	s, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "revocation: bad flags: %v\n", err)
		os.Exit(2)
	}
	res, err := run(s, os.Stderr)
	if res != nil {
		printTables(os.Stdout, s, res)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "revocation: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("revocation", flag.ContinueOnError)
	cells := fs.String("cells", "10:load,10:idle,4:load,2:load,2:idle", "comma-separated configurations, replicas:load (all they answer), replicas:load@R (R Checks/s each, open loop) or replicas:idle")
	fs.IntVar(&s.revocations, "revocations", 200, "revocations measured per configuration (delete and disable alternate), spread over the rounds")
	fs.IntVar(&s.rounds, "rounds", 2, "rounds; the configurations alternate within each")
	fs.IntVar(&s.conns, "conns", 4, "Checks in flight per loaded replica (closed loop)")
	fs.IntVar(&s.loadKeys, "load-keys", 100, "allowed keys the load cycles through")
	fs.IntVar(&s.gomaxprocs, "gomaxprocs", 1, "GOMAXPROCS of each replica (0: Go's default, every core)")
	fs.DurationVar(&s.warmup, "warmup", 2*time.Second, "load before a loaded configuration's first revocation in a round")
	polls := fs.Bool("polls", true, "poll every replica with Checks for the key, back to back, to time its first refusal; false measures by extauthz's own histogram only (Redis's append to the cache dropping the key), so that the polls take no CPU from the replicas")
	fs.BoolVar(&s.keep, "keep", false, "keep the working directory (replica, Redis and load-generator logs)")
	fs.StringVar(&s.extauthz, "extauthz", "", "an extauthz binary to run instead of building ./extauthz/cmd/extauthz (e.g. one built with a profiler)")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	s.noPolls = !*polls
	var err error
	if s.cells, err = parseCells(*cells); err != nil {
		return s, err
	}
	if s.revocations < s.rounds || s.rounds < 1 || s.conns < 1 || s.loadKeys < 1 || s.gomaxprocs < 0 || s.warmup < 0 {
		return s, fmt.Errorf("-revocations must be at least -rounds (at least 1); -conns and -load-keys at least 1")
	}
	return s, nil
}

// parseCells reads "10:load,10:load@300,2:idle".
func parseCells(list string) ([]cellSpec, error) {
	var cells []cellSpec
	for _, f := range strings.Split(list, ",") {
		n, kind, ok := strings.Cut(strings.TrimSpace(f), ":")
		replicas, err := strconv.Atoi(n)
		kind, r, paced := strings.Cut(kind, "@")
		rate, rerr := strconv.Atoi(r)
		if !ok || err != nil || replicas < 1 || (kind != "load" && kind != "idle") || (paced && (kind != "load" || rerr != nil || rate < 1)) {
			return nil, fmt.Errorf("configuration %q: want <replicas>:load, <replicas>:load@<Checks per second per replica> or <replicas>:idle", f)
		}
		cells = append(cells, cellSpec{replicas: replicas, loaded: kind == "load", rate: rate})
	}
	return cells, nil
}

// roleEnv, when set to "load", makes this binary (the bench or its test) the load generator.
const roleEnv = "KEYGATE_REVOCATION_BENCH_ROLE"

// runRole runs the load generator if roleEnv asks for it, and reports whether it did.
func runRole() bool {
	if os.Getenv(roleEnv) != "load" {
		return false
	}
	if err := serveLoad(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "load generator: %v\n", err)
		os.Exit(1)
	}
	return true
}
