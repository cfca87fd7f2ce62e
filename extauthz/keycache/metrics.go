package keycache

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	hits, misses  prometheus.Counter
	absent        prometheus.Counter
	versionReads  prometheus.Counter
	fallbacks     map[string]prometheus.Counter
	invalidations prometheus.Counter
	evictions     prometheus.Counter
	restarts      *prometheus.CounterVec
	renewals      map[string]prometheus.Counter
}

// Results of a lease renewal, the values of keycache_lease_renewals_total's result label.
const (
	renewOK    = "ok"
	renewError = "error"
)

// newMetrics registers the cache's metrics with reg (nil: none). Size and liveness are read at
// scrape time, so lookups pay nothing for them.
func newMetrics(reg prometheus.Registerer, size func() int, live func() bool, digests func() int, applied func() uint64, trusted func() bool) *metrics {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_lookups_total",
		Help: "Access-key lookups by result: hit (answered from memory), miss (read from Redis) or absent (refused from the digest set, no lookup in Redis).",
	}, []string{"result"})
	fallbacks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_absent_fallbacks_total",
		Help: "Lookups of a digest outside the digest set that read Redis all the same, by reason: lagging (the store was ahead of this replica's event stream for longer than the wait), error (the version read failed or could not be checked against the changes this replica applied, or the check was cancelled), resync (the event stream broke meanwhile, or the read showed Redis lost data).",
	}, []string{"reason"})
	versionReads := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_version_reads_total",
		Help: "Reads of the access-key store's newest change (its version and change log entry: one GET and one XREVRANGE of one entry) that proved digests outside the digest set absent; at most one is in flight, shared by every lookup that arrived before it began.",
	})
	renewals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_lease_renewals_total",
		Help: "Renewals of this replica's lease in the access-key store (--digest-lease), by result (ok, error). While renewals fail, unknown keys are proven absent by a read of the store's newest change, as without a lease.",
	}, []string{"result"})
	m := &metrics{
		renewals:     map[string]prometheus.Counter{renewOK: renewals.WithLabelValues(renewOK), renewError: renewals.WithLabelValues(renewError)},
		hits:         lookups.WithLabelValues("hit"),
		misses:       lookups.WithLabelValues("miss"),
		absent:       lookups.WithLabelValues("absent"),
		versionReads: versionReads,
		fallbacks:    map[string]prometheus.Counter{},
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
	for _, r := range fallbackReasons {
		m.fallbacks[r] = fallbacks.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(lookups, m.invalidations, m.evictions, m.restarts, fallbacks, versionReads, renewals)
		reg.MustRegister(stateGauges(size, live, digests, applied)...)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_lease_trusted",
			Help: "1 while this replica refuses unknown keys from its digest set without any read of Redis, on its lease's word (--digest-lease); 0 while each batch of them reads the store's newest change.",
		}, func() float64 {
			if trusted() {
				return 1
			}
			return 0
		}))
	}
	return m
}

// stateGauges are the cache's state, read at each scrape.
func stateGauges(size func() int, live func() bool, digests func() int, applied func() uint64) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_digests",
			Help: "Digests in the digest set, every access key in the store as this replica follows it (0 while the event stream is not followed).",
		}, func() float64 { return float64(digests()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "keycache_applied_resource_version",
			Help: "The resourceVersion of the newest access-key change this replica applied (0 while the event stream is not followed): a change (a revocation too) is in force on this replica once this reached the resourceVersion the store answered it with; the store's version minus this is the replica's lag in changes.",
		}, func() float64 { return float64(applied()) }),
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
		}),
	}
}
