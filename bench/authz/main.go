// Command authz measures what checking access keys costs per request, end to end through one
// Envoy: no check at all, Envoy's own api_key_auth filter with 10,000 keys, the edge's ext_authz
// filter calling a do-nothing gRPC server, and the same filter calling this project's extauthz
// with Redis. Every case runs in the same Envoy build and bootstrap, with allowed, unknown-key,
// scope-refused and rule-scoped keys, at several connection counts, with TLS on and off, in
// interleaved rounds. Every answer's status is checked: a fast wrong answer fails the run. See
// bench/README.md.
//
//	go run ./bench/authz [-duration 2s] [-rounds 3] [-conns 1,16] [-tls false,true]
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/sizes"
)

// The cases, in the order they run within a round.
const (
	caseNoAuth   = "no auth"
	caseAPIKey   = "api_key_auth"
	caseNull     = "ext_authz → do-nothing"
	caseExtAuthz = "ext_authz → extauthz"
)

// The keys.
const (
	keyAllowed = "allowed"
	keyUnknown = "unknown key"
	keyRefused = "scope-refused"
	keyRule    = "rule-scoped"
)

type benchCase struct {
	name string
	keys []string // the key kinds this case can judge
}

var cases = []benchCase{
	{caseNoAuth, []string{keyAllowed}},
	{caseAPIKey, []string{keyAllowed, keyUnknown, keyRefused}},
	{caseNull, []string{keyAllowed, keyUnknown, keyRefused, keyRule}},
	{caseExtAuthz, []string{keyAllowed, keyUnknown, keyRefused, keyRule}},
}

var keyKinds = []string{keyAllowed, keyUnknown, keyRefused, keyRule}

// settings are the command line.
type settings struct {
	duration  time.Duration
	rounds    int
	conns     []int
	tls       []bool
	fillerKey int // keys besides the bench's own, in Redis and in api_key_auth
}

func main() {
	if runRole() {
		return
	}
	var s settings
	flag.DurationVar(&s.duration, "duration", 2*time.Second, "measured time per cell (after a tenth more of warm-up)")
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; the cells alternate within each, and the table shows each cell's median round")
	conns := flag.String("conns", "1,16", "comma-separated connection counts")
	tlsList := flag.String("tls", "false,true", "comma-separated: plaintext (false) and TLS (true) to the listener")
	flag.IntVar(&s.fillerKey, "keys-total", 10000, "access keys in Redis and in api_key_auth")
	flag.Parse()
	var err error
	if s.conns, err = sizes.Parse(*conns, 1); err == nil {
		s.tls, err = bools(*tlsList)
	}
	if err != nil || s.rounds < 1 || s.duration <= 0 {
		fmt.Fprintf(os.Stderr, "authz: bad flags: %v\n", err)
		os.Exit(2)
	}
	results, env, err := run(s, os.Stderr)
	fail(err)
	printTables(os.Stdout, s, env, results)
}

// roleEnv, when set, makes this binary (the bench or its test) one of the bench's servers:
// "upstream <addr>" or "null <addr> <keys file>".
const roleEnv = "KEYGATE_AUTHZ_BENCH_ROLE"

// runRole serves the role roleEnv names, if any, and reports whether it did.
func runRole() bool {
	role := strings.Fields(os.Getenv(roleEnv))
	switch {
	case len(role) == 2 && role[0] == "upstream":
		fail(serveUpstream(role[1]))
	case len(role) == 3 && role[0] == "null":
		fail(serveNullAuthz(role[1], role[2]))
	default:
		return false
	}
	return true
}

func fail(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "authz: %v\n", err)
		os.Exit(1)
	}
}

func bools(s string) ([]bool, error) {
	var out []bool
	for _, f := range strings.Split(s, ",") {
		b, err := strconv.ParseBool(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
