package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Kubernetes source's Prometheus metrics (namespace keygate, subsystem xds).
type metrics struct {
	targetErrors *prometheus.GaugeVec
	watchErrors  *prometheus.CounterVec
}

// Resources watched, the values of the resource label of keygate_xds_kube_watch_errors_total.
const (
	resourceClusters = "clusters"
	resourceSecrets  = "secrets"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "keygate", "xds"
	m := &metrics{
		targetErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_target_errors",
			Help: "1 for each target (by Cluster object and kind) whose object or Secret does not translate; its last good version, if any, stays in force.",
		}, []string{"cluster", "kind"}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_watch_errors_total",
			Help: "Failed lists and watches of the Kubernetes source, by resource; the informers retry and the last good targets stay in force meanwhile.",
		}, []string{"resource"}),
	}
	// Both series exist from the start, so that increase() alerts work before the first failure.
	for _, r := range []string{resourceClusters, resourceSecrets} {
		m.watchErrors.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.targetErrors, m.watchErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
