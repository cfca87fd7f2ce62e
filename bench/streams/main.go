// Command streams measures exec and port-forward through the edge, with the real client-go
// (k8s.io/client-go/tools/portforward and remotecommand, WebSocket and SPDY) against the local
// platform (localdev) and its kubelet stand-in: port-forward throughput through the edge beside
// the same bytes through the API server without the edge and straight to the stand-in's echo
// server, the round trip of a 1-byte exec echo, and how many concurrent exec sessions one Envoy
// and one extauthz hold before the echo slows down or fails. Paths alternate within each round;
// every byte is checked, so a fast wrong answer fails the run. See bench/README.md.
//
//	go run ./bench/streams [-rounds 5] [-size 32MiB] [-echoes 500] [-sessions 1,10,50,100,200]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/sizes"
)

// settings are the command line.
type settings struct {
	rounds      int
	size        int           // bytes per port-forward transfer
	echoes      int           // 1-byte exec echoes per latency cell and round
	sessions    []int         // concurrent exec session steps
	idle        time.Duration // how long the concurrent sessions stay idle before they echo
	perSess     int           // echoes per concurrent session
	stepRounds  int           // rounds of each session step, through the edge and without it
	stopAgainst string        // the p99 a step's edge p99 may not pass ten times (sessions.go)
	keep        bool
}

func main() {
	var s settings
	flag.IntVar(&s.rounds, "rounds", 5, "interleaved rounds; throughput shows each cell's median round, latency pools every round")
	sizeMiB := flag.Int("size-mib", 32, "MiB sent (and echoed back) per port-forward transfer")
	flag.IntVar(&s.echoes, "echoes", 500, "1-byte exec echoes per latency cell and round")
	steps := flag.String("sessions", "1,10,50,100,200", "comma-separated concurrent exec session counts, in order")
	flag.DurationVar(&s.idle, "idle", 5*time.Second, "how long the concurrent sessions stay idle before echoing")
	flag.IntVar(&s.perSess, "session-echoes", 20, "1-byte echoes per concurrent session")
	flag.IntVar(&s.stepRounds, "step-rounds", 3, "rounds of each session step (edge and API server alternating); the table shows the median round")
	flag.StringVar(&s.stopAgainst, "stop-against", stopAgainstOneSession, "stop the session steps when the edge's echo p99 passes 10× that of: one-session (the first step) or api-server (the same step without the edge)")
	flag.BoolVar(&s.keep, "keep", false, "keep the platform's directory (logs of every component)")
	flag.Parse()
	s.size = *sizeMiB << 20
	var err error
	s.sessions, err = sizes.Parse(*steps, 1)
	if err != nil || s.rounds < 1 || s.size < 1 || s.echoes < 1 || s.perSess < 1 || s.stepRounds < 1 ||
		(s.stopAgainst != stopAgainstOneSession && s.stopAgainst != stopAgainstAPIServer) {
		fmt.Fprintf(os.Stderr, "streams: bad flags: %v\n", err)
		os.Exit(2)
	}
	res, err := run(s, os.Stderr)
	if res != nil {
		printTables(os.Stdout, s, res)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "streams: %v\n", err)
		os.Exit(1)
	}
}
