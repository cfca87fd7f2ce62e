package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// pathEcho is the stand-in's echo server reached directly: no API server, no edge, no stream
// protocol, the ceiling of what a forwarded port can carry on this machine.
const pathEcho = "direct to the echo server"

type cell struct{ path, transport string }

// results are every round's figures.
type results struct {
	env     *env
	mbps    map[cell][]float64       // port-forward throughput, one per round
	rtt     map[cell][]time.Duration // 1-byte exec echo round trips, every round pooled
	setup   map[cell][]time.Duration // exec session setup (start to first echo), one per round
	steps   []stepPair
	stopped string // why the session steps stopped early, if they did
}

func run(s settings, progress io.Writer) (*results, error) {
	e, err := startEnv(progress)
	if err != nil {
		return nil, err
	}
	defer e.stop(s.keep)
	r := &results{env: e, mbps: map[cell][]float64{}, rtt: map[cell][]time.Duration{}, setup: map[cell][]time.Duration{}}
	if err := r.rounds(s, progress); err != nil {
		return r, err
	}
	return r, r.sessionSteps(s, progress)
}

// rounds runs every throughput and latency cell once per round, each round starting at a
// different cell, so that a slow spell of the shared machine spreads over all of them.
func (r *results) rounds(s settings, progress io.Writer) error {
	data := make([]byte, s.size)
	rng := rand.NewChaCha8([32]byte{19})
	_, _ = rng.Read(data)
	addrs := map[cell]string{{pathEcho, "TCP"}: r.env.echoAddr}
	for _, t := range []target{r.env.edge, r.env.direct} {
		for _, tr := range transports {
			addr, stop, err := forward(t, tr)
			if err != nil {
				return err
			}
			defer stop()
			addrs[cell{t.name, tr}] = addr
		}
	}
	forwardCells := []cell{{pathEcho, "TCP"}}
	var execCells []cell
	for _, t := range []target{r.env.edge, r.env.direct} {
		for _, tr := range transports {
			forwardCells = append(forwardCells, cell{t.name, tr})
			execCells = append(execCells, cell{t.name, tr})
		}
	}
	for round := range s.rounds {
		fmt.Fprintf(progress, "streams: round %d of %d\n", round+1, s.rounds)
		for i := range forwardCells {
			c := forwardCells[(i+round)%len(forwardCells)]
			d, err := transfer(addrs[c], data)
			if err != nil {
				return fmt.Errorf("port-forward %s (%s): %w", c.path, c.transport, err)
			}
			r.mbps[c] = append(r.mbps[c], float64(len(data))/1e6/d.Seconds())
		}
		for i := range execCells {
			if err := r.execCell(s, execCells[(i+round)%len(execCells)]); err != nil {
				return err
			}
		}
	}
	return nil
}

// execCell opens one exec session for c, records its setup and s.echoes echo round trips.
func (r *results) execCell(s settings, c cell) error {
	t := r.env.edge
	if c.path == r.env.direct.name {
		t = r.env.direct
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sess, setup, err := openSession(ctx, t, c.transport)
	if err != nil {
		return err
	}
	rtts, err := sess.echoes(s.echoes, r.rtt[c])
	r.rtt[c] = rtts
	r.setup[c] = append(r.setup[c], setup)
	if cerr := sess.close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("exec %s (%s): %w", c.path, c.transport, err)
	}
	return nil
}
