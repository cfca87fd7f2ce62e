package ops

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// PprofHandler serves Go's profiles under /debug/pprof/ (heap, goroutine, profile, trace, …) on
// a mux of its own, for a component's --pprof-address: nothing else is served there, and the
// profiles are never on the metrics address, which Prometheus scrapes.
func PprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// PprofAddress checks a --pprof-address and returns where to listen. Profiles are served on
// loopback only: goroutine dumps and the command line show the process's internals, and a CPU
// profile or trace costs CPU on demand, so a pod's profiles are reached with kubectl
// port-forward. A port alone (":6060") means 127.0.0.1, not every interface as Go's listeners
// would read it; any other host must be a loopback address or localhost.
func PprofAddress(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--pprof-address %q is not host:port", addr)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("--pprof-address %q: profiles are served on a loopback address only (127.0.0.1, ::1, localhost, or a port alone); reach a pod's with kubectl port-forward", addr)
	}
	return addr, nil
}
