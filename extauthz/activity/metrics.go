package activity

import "github.com/prometheus/client_golang/prometheus"

// Result labels of the flushes metric.
const (
	resultOK    = "ok"
	resultError = "error"
)

type metrics struct {
	flushes *prometheus.CounterVec
	dropped prometheus.Counter
}

// newMetrics registers the recorder's metrics with reg (nil: none). The pending gauge is read at
// scrape time, so Record pays nothing for it.
func newMetrics(reg prometheus.Registerer, pending func() int) *metrics {
	m := &metrics{
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "activity_flushes_total",
			Help: "Writes of access-key last-use times to the key store, by result (ok, error). A failed write is retried with the next.",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "activity_dropped_total",
			Help: "Uses of access keys not recorded because too many keys were waiting for a flush.",
		}),
	}
	// Both results exist from the start, so that rate() and alerts see them before the first error.
	m.flushes.WithLabelValues(resultOK)
	m.flushes.WithLabelValues(resultError)
	if reg != nil {
		reg.MustRegister(m.flushes, m.dropped, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "activity_pending_keys",
			Help: "Access keys whose last-use time waits for the next flush.",
		}, func() float64 { return float64(pending()) }))
	}
	return m
}
