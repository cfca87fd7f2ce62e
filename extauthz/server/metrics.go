package server

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	checks      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	storeErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "checks_total",
			Help: "Authorization checks by result (ok, unauthenticated, forbidden, error) and target kind.",
		}, []string{"result", "target_kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "check_duration_seconds",
			Help:    "Time to answer a check, by result.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"result"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "key_store_errors_total",
			Help: "Key look-ups that failed because the key store (Redis) did not answer.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.duration, m.storeErrors)
	}
	return m
}
