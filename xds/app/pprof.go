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

// startPprof serves ops.PprofHandler on addr from now on, before the sources load, so that
// start-up can be profiled too; stop shuts it down. A port already taken is a start-up error.
// addr is loopback only (ops.PprofAddress, checked when the flags were parsed).
func startPprof(log *slog.Logger, addr string) (stop func(), err error) {
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
