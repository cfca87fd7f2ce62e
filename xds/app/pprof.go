package app

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

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

// pprofHandler serves Go's profiles under /debug/pprof/ (heap, goroutine, profile, trace, …),
// on a mux of its own: nothing else is served there, and the profiles are never on
// --http-address, which Prometheus scrapes.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves pprofHandler on addr until ctx ends. Profiles show the program's insides
// (goroutine stacks, the command line, allocation sites) though not its data: a non-loopback
// address is logged at WARN.
func servePprof(ctx context.Context, log *slog.Logger, addr string) error {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			log.Warn("serving Go's profiles (pprof) beyond loopback: anyone who reaches the address can read goroutine stacks and profile the process",
				"pprof_address", addr)
		}
	}
	return ops.ServeHTTP(ctx, log, "xds pprof", addr, pprofHandler())
}
