package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reload results, the values of the result label of keygate_xds_config_reloads_total.
const (
	// ResultApplied: a new configuration was published to every Envoy.
	ResultApplied = "applied"
	// ResultUnchanged: the source changed but the configuration did not; nothing was pushed.
	ResultUnchanged = "unchanged"
	// ResultInvalid: the source could not be read (e.g. a bad targets file); nothing changed.
	ResultInvalid = "invalid"
	// ResultRejected: the targets could not be translated into a valid Envoy configuration.
	ResultRejected = "rejected"
)

// metrics are the control plane's Prometheus metrics (namespace keygate, subsystem xds).
type metrics struct {
	targets     *prometheus.GaugeVec
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	nacks       *prometheus.CounterVec
	pushes      *prometheus.CounterVec
	connected   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "keygate", "xds"
	m := &metrics{
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "targets",
			Help: "Targets in the configuration published to Envoy, by kind.",
		}, []string{"kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "config_reloads_total",
			Help: "Reloads of the targets, by result: applied, unchanged, invalid (source unreadable) or rejected (not translatable).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last reload that was applied or found unchanged.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "nacks_total",
			Help: "Configurations Envoy rejected (NACKs), by resource type.",
		}, []string{"type"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pushes_total",
			Help: "Responses sent to Envoys, by resource type: each carries new or removed resources of that type to one Envoy.",
		}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "connected_envoys",
			Help: "Envoys connected over ADS (one stream each).",
		}),
	}
	// Every result appears from the start, so that rate() and alerts work before the first failure.
	for _, r := range []string{ResultApplied, ResultUnchanged, ResultInvalid, ResultRejected} {
		m.reloads.WithLabelValues(r)
	}
	for _, t := range []string{"cluster", "listener", "scoped_route", "route", "secret"} {
		m.nacks.WithLabelValues(t)
		m.pushes.WithLabelValues(t)
	}
	for _, c := range []prometheus.Collector{m.targets, m.reloads, m.lastSuccess, m.nacks, m.pushes, m.connected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
