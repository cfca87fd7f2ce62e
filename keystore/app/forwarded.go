package app

import (
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The login endpoints limit failures and sign-in starts per client address, which they read
// from the last X-Forwarded-For entry: the address Envoy appends (keystore/auth, clientAddress).
// That entry is only Envoy's if the request came from Envoy, so the header is believed only
// from a connection that presented the edge's client certificate (chained to
// --requestheader-client-ca-file, a name in --requestheader-allowed-names), as the management
// API believes identity headers. From anyone else who can reach the port (a pod beside
// keystore, were the NetworkPolicy missing) the header is removed, and the limits key on the
// connection's own address: naming a fresh address in each request no longer buys a fresh
// allowance of password guesses. An edge that presents no certificate to this port gets all
// its clients limited as one address: fail closed, logged and counted so that it is noticed.

// forwardedIgnoredWarnEvery spaces the WARN lines about ignored headers: one is enough to find
// the misconfiguration, the counter keeps the total.
const forwardedIgnoredWarnEvery = time.Minute

// edgeForwarded serves h, passing X-Forwarded-For on only from the edge (above).
type edgeForwarded struct {
	h        http.Handler
	allowed  []string // the edge certificate's common names; empty: any the CA signed
	ignored  prometheus.Counter
	log      *slog.Logger
	lastWarn atomic.Int64 // unix nanoseconds of the last WARN
}

func newEdgeForwarded(h http.Handler, allowed []string, reg prometheus.Registerer, log *slog.Logger) (*edgeForwarded, error) {
	e := &edgeForwarded{h: h, allowed: allowed, log: log, ignored: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "keystore", Name: "auth_forwarded_for_ignored_total",
		Help: "Requests to the login endpoints whose X-Forwarded-For was ignored because they did not come with the edge's client certificate: their limits key on the connection's address. Above 0 with an edge in front, the edge's auth target lacks its client certificate.",
	})}
	if reg != nil {
		if err := reg.Register(e.ignored); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *edgeForwarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.Header["X-Forwarded-For"]; ok && !e.fromEdge(r) {
		r.Header.Del("X-Forwarded-For")
		e.ignored.Inc()
		now := time.Now().UnixNano()
		if last := e.lastWarn.Load(); now-last >= int64(forwardedIgnoredWarnEvery) && e.lastWarn.CompareAndSwap(last, now) {
			e.log.Warn("ignoring X-Forwarded-For from a client without the edge's client certificate: its login limits key on the connection's address; if the edge sent it, give the edge's auth target its client certificate",
				"remote_address", r.RemoteAddr, "path", r.URL.Path)
		}
	}
	e.h.ServeHTTP(w, r)
}

// fromEdge reports whether r's connection presented a client certificate that the TLS
// handshake verified against the requestheader CA, with an allowed common name.
func (e *edgeForwarded) fromEdge(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return false
	}
	return len(e.allowed) == 0 || slices.Contains(e.allowed, r.TLS.VerifiedChains[0][0].Subject.CommonName)
}
