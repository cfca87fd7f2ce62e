// Command authz measures what checking access keys costs per request, end to end through one
// Envoy: no check at all, Envoy's own api_key_auth filter with 10,000 keys, the edge's ext_authz
// filter calling a do-nothing gRPC server, and the same filter calling this project's extauthz
// with Redis; and the do-nothing server's check inside Envoy, as a dynamic module in Go
// (inenvoy/). Every case runs in the same Envoy build and bootstrap, with allowed, unknown-key,
// scope-refused and rule-scoped keys, at several connection counts, with TLS on and off, in
// interleaved rounds. Every answer's status is checked: a fast wrong answer fails the run. See
// bench/README.md.
//
//	go run ./bench/authz [-duration 2s] [-rounds 3] [-conns 1,16] [-tls false,true] [-variants all]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/sizes"
	"github.com/keygate-dev/keygate/xds/translate"
)

// The cases, in the order they run within a round.
const (
	caseNoAuth  = "no auth"
	caseAPIKey  = "api_key_auth"
	caseInEnvoy = "in-envoy module"
	// caseInEnvoyGoHooks is the same module with every hook calling into Go, as one written
	// with Envoy's Go SDK does.
	caseInEnvoyGoHooks = "in-envoy module, every hook in Go"
	caseNull           = "ext_authz → do-nothing"
	caseExtAuthz       = "ext_authz → extauthz"
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
	// authz is the process that answers the case's checks ("null", "extauthz"), "" for none.
	authz string
	// variant, when set, is one change to the edge's ext_authz call (variants.go), measured
	// with the allowed key beside the case without it; nil is the edge's own configuration.
	variant *variant
}

// baseCases are the cases every run measures.
var baseCases = []benchCase{
	{name: caseNoAuth, keys: []string{keyAllowed}},
	{name: caseAPIKey, keys: []string{keyAllowed, keyUnknown, keyRefused}},
	// The do-nothing server's check (its table of digests and statuses) in an Envoy dynamic
	// module (inenvoy/): what the check costs without the gRPC call.
	{name: caseInEnvoy, keys: []string{keyAllowed, keyUnknown, keyRefused, keyRule}},
	{name: caseInEnvoyGoHooks, keys: []string{keyAllowed, keyUnknown}},
	{name: caseNull, keys: []string{keyAllowed, keyUnknown, keyRefused, keyRule}, authz: "null"},
	{name: caseExtAuthz, keys: []string{keyAllowed, keyUnknown, keyRefused, keyRule}, authz: "extauthz"},
}

// withVariants is baseCases and one case per variant.
func withVariants(vs []*variant) []benchCase {
	out := append([]benchCase(nil), baseCases...)
	for _, v := range vs {
		base := caseExtAuthz
		if v.authz != "extauthz" {
			base = caseNull
		}
		keys := []string{keyAllowed}
		// Every key of the case it changes: extauthz against extauthz (each key's path
		// differs), or another server and Envoy's other client (HTTP mode: its denials too).
		if v.baseline != "" || v.httpService != "" {
			for _, b := range baseCases {
				if b.name == base {
					keys = b.keys
				}
			}
		}
		out = append(out, benchCase{name: base + ", " + v.label, keys: keys, authz: v.process(), variant: v})
	}
	return out
}

var keyKinds = []string{keyAllowed, keyUnknown, keyRefused, keyRule}

// settings are the command line.
type settings struct {
	duration  time.Duration
	rounds    int
	conns     []int
	tls       []bool
	fillerKey int // keys besides the bench's own, in Redis and in api_key_auth
	variants  []*variant
	baseline  string   // a git revision to build a second extauthz from ("" for none)
	keys      []string // the key kinds measured
	stat      string   // statMedian or statBest (on the command line, either or both)
	// profiles is where the CPU profiles of extauthz and the do-nothing server are kept ("" for
	// none): one per cell of at least a second, taken while the cell is measured.
	profiles string
	// extAuthzTimeout bounds each ext_authz check (0: the edge's default).
	extAuthzTimeout time.Duration
}

func main() {
	if runRole() {
		return
	}
	var s settings
	flag.DurationVar(&s.duration, "duration", 2*time.Second, "measured time per cell (after a tenth more of warm-up)")
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; the cells alternate within each, and the table shows each cell's median (or best) round")
	flag.StringVar(&s.stat, "stat", statMedian, "how the table sums up a cell's rounds: median, or best (the most requests per second, the least CPU per request: the least disturbed by others on a shared machine); median,best prints both tables of the same rounds")
	keys := flag.String("keys", strings.Join(keyKinds, ","), "comma-separated keys to measure: "+strings.Join(keyKinds, ", "))
	conns := flag.String("conns", "1,16", "comma-separated connection counts")
	tlsList := flag.String("tls", "false,true", "comma-separated: plaintext (false) and TLS (true) to the listener")
	flag.IntVar(&s.fillerKey, "keys-total", 10000, "access keys in Redis and in api_key_auth")
	variants := flag.String("variants", "", "comma-separated changes to Envoy's ext_authz call to measure beside the edge's own, with the allowed key: "+variantNames()+", or all")
	flag.StringVar(&s.baseline, "baseline", "", "a git revision (e.g. HEAD~3, a commit): also measure extauthz built from it, with every key, beside the working tree's, with the same Envoy configuration")
	flag.StringVar(&s.profiles, "profiles", filepath.Join(os.TempDir(), "keygate-authz-profiles"), "directory that keeps the CPU profiles of extauthz and the do-nothing servers, one per cell of a second or more (its *.pprof files are removed first); empty keeps none")
	flag.DurationVar(&s.extAuthzTimeout, "extauthz-timeout", translate.DefaultExtAuthzTimeout, "how long Envoy waits for an ext_authz check before it answers 503 (the edge's default; on a machine so overloaded that a process stalls for that long, a longer one lets the run finish)")
	flag.Parse()
	var err error
	if s.conns, err = sizes.Parse(*conns, 1); err == nil {
		s.tls, err = bools(*tlsList)
	}
	if err == nil {
		s.variants, err = parseVariants(*variants)
	}
	if err == nil && s.baseline != "" {
		s.variants = append(s.variants, baselineVariant(s.baseline))
	}
	if err == nil {
		s.keys, err = parseKeys(*keys)
	}
	stats := strings.Split(s.stat, ",")
	for _, st := range stats {
		if err == nil && st != statMedian && st != statBest {
			err = fmt.Errorf("-stat %q: want median, best, or both (median,best)", s.stat)
		}
	}
	if err != nil || s.rounds < 1 || s.duration <= 0 {
		fmt.Fprintf(os.Stderr, "authz: bad flags: %v\n", err)
		os.Exit(2)
	}
	results, env, err := run(s, os.Stderr)
	fail(err)
	// Each way of summing up the same rounds gets its tables.
	for i, st := range stats {
		if i > 0 {
			fmt.Println()
		}
		s.stat = st
		printTables(os.Stdout, s, env, results)
	}
}

// roleEnv, when set, makes this binary (the bench or its test) one of the bench's servers:
// "upstream <addr>", "null <addr> <keys file> <pprof addr> [gRPC option]" (serveNullAuthz) or
// "null-http <addr> <keys file> <pprof addr>" (serveNullHTTPAuthz).
const roleEnv = "KEYGATE_AUTHZ_BENCH_ROLE"

// runRole serves the role roleEnv names, if any, and reports whether it did.
func runRole() bool {
	role := strings.Fields(os.Getenv(roleEnv))
	switch {
	case len(role) == 2 && role[0] == "upstream":
		fail(serveUpstream(role[1]))
	case (len(role) == 4 || len(role) == 5) && role[0] == "null":
		fail(serveNullAuthz(role[1], role[2], role[3], strings.Join(role[4:], "")))
	case len(role) == 4 && role[0] == nullHTTP:
		fail(serveNullHTTPAuthz(role[1], role[2], role[3]))
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

// parseKeys reads -keys: key kinds, in keyKinds' order.
func parseKeys(list string) ([]string, error) {
	want := map[string]bool{}
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !slices.Contains(keyKinds, k) {
			return nil, fmt.Errorf("-keys: no key %q (have %s)", k, strings.Join(keyKinds, ", "))
		}
		want[k] = true
	}
	var out []string
	for _, k := range keyKinds {
		if want[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-keys: none")
	}
	return out, nil
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
