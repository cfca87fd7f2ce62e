package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keygate-dev/keygate/internal/ops"
)

// pprofAddress is where --pprof-address listens: a port alone (":6060") listens on 127.0.0.1,
// not on every interface as Go's listeners would; an explicit host (0.0.0.0, a pod IP) is
// taken as given.
func pprofAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// startPprof serves ops.PprofHandler on addr from now on, before the sources load, so that
// start-up can be profiled too; stop shuts it down. A port already taken is a start-up error.
// Profiles show the program's insides (goroutine stacks, the command line, allocation sites)
// though not its data: a non-loopback address is logged at WARN.
func startPprof(log *slog.Logger, addr string) (stop func(), err error) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("serving Go's profiles (pprof) beyond loopback: anyone who reaches the address can read goroutine stacks and profile the process",
				"pprof_address", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-address: listen on %s: %w", addr, err)
	}
	// No write timeout: a CPU profile or trace answers after the seconds it was asked for.
	srv := &http.Server{Handler: ops.PprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "server", "xds pprof", "address", l.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("xds pprof stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close() // a profile still being taken
		}
		<-done
	}, nil
}
