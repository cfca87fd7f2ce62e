package keycache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	hits, misses  prometheus.Counter
	invalidations prometheus.Counter
	evictions     prometheus.Counter
	restarts      *prometheus.CounterVec
}

// newMetrics registers the cache's metrics with reg (nil: none). Size and liveness are read at
// scrape time, so lookups pay nothing for them.
func newMetrics(reg prometheus.Registerer, size func() int, live func() bool) *metrics {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_lookups_total",
		Help: "Access-key lookups by result: hit (answered from memory) or miss (read from Redis).",
	}, []string{"result"})
	m := &metrics{
		hits:   lookups.WithLabelValues("hit"),
		misses: lookups.WithLabelValues("miss"),
		invalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_invalidations_total",
			Help: "Access-key change events received from Redis; each drops that key from the cache.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_evictions_total",
			Help: "Access keys dropped from a full cache to make room for another (raise --key-cache-size if this grows steadily).",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_stream_restarts_total",
			Help: "Times following the access-key event stream broke and the cache was emptied, by reason (error, resync).",
		}, []string{"reason"}),
	}
	m.restarts.WithLabelValues("error")
	m.restarts.WithLabelValues("resync")
	if reg != nil {
		reg.MustRegister(lookups, m.invalidations, m.evictions, m.restarts,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_keys",
				Help: "Access keys held in the cache.",
			}, func() float64 { return float64(size()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_live",
				Help: "1 while the access-key event stream is followed and the cache serves keys; 0 while every lookup goes to Redis.",
			}, func() float64 {
				if live() {
					return 1
				}
				return 0
			}))
	}
	return m
}
