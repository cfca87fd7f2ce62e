package follow

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Streams, the values of the stream label of keygate_extauthz_revocation_lag_seconds.
const (
	StreamAccessKeys = "access_keys"
	StreamUsers      = "users"
)

// NewLag registers keygate_extauthz_revocation_lag_seconds with reg (nil: none) and returns it.
// Both caches observe into it: a revocation reaches a replica through either stream.
func NewLag(reg prometheus.Registerer) *prometheus.HistogramVec {
	lag := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "revocation_lag_seconds",
		Help:    "Age of an access-key or user change, by Redis's clock, when this replica dropped what it cached for it (by stream: access_keys, users): how long a revoked key could still be served from memory.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"stream"})
	lag.WithLabelValues(StreamAccessKeys)
	lag.WithLabelValues(StreamUsers)
	if reg != nil {
		reg.MustRegister(lag)
	}
	return lag
}

// ObserveLag records how late a change logged at at is applied at now. A zero at (an entry from
// before the field) is skipped; a change from the future (clocks apart) counts as no lag.
func ObserveLag(o prometheus.Observer, at, now time.Time) {
	if o == nil || at.IsZero() {
		return
	}
	o.Observe(max(now.Sub(at), 0).Seconds())
}
