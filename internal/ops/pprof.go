package ops

import (
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
