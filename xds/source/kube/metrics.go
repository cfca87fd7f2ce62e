package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Kubernetes source's Prometheus metrics (namespace keygate, subsystem xds).
type metrics struct {
	targetErrors       *prometheus.GaugeVec
	watchErrors        *prometheus.CounterVec
	clusterWatchErrors *prometheus.CounterVec
	// The discovery of virtual clusters: connected clusters by mode, switches, polls.
	discoveryClusters    *prometheus.GaugeVec
	discoveryModeChanges *prometheus.CounterVec
	discoveryPolls       *prometheus.CounterVec
}

// Resources watched, the values of the resource label of keygate_xds_kube_watch_errors_total.
const (
	resourceClusters = "clusters"
	resourceSecrets  = "secrets"
	// resourceVirtualClusters is the declared VirtualCluster objects.
	resourceVirtualClusters = "virtualclusters"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "keygate", "xds"
	m := &metrics{
		targetErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_target_errors",
			Help: "Targets (by Cluster object and kind) whose object or Secret does not translate: 1 for a cluster or grafana target, the number of such virtual clusters for virtualcluster; their last good versions, if any, stay in force.",
		}, []string{"cluster", "kind"}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_watch_errors_total",
			Help: "Failed lists and watches of the Kubernetes source, by resource; the informers retry and the last good targets stay in force meanwhile.",
		}, []string{"resource"}),
		clusterWatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_cluster_watch_errors_total",
			Help: "Failed lists and watches of virtual-cluster discovery in a connected cluster, by Cluster object and resource; the informers retry and the cluster's virtual clusters keep their targets meanwhile.",
		}, []string{"cluster", "resource"}),
		discoveryClusters: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_discovery_clusters",
			Help: "Connected clusters by virtual-cluster discovery mode: polled (no vcluster Service at the last poll; no connection held) or watched (informers).",
		}, []string{"mode"}),
		discoveryModeChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_discovery_mode_changes_total",
			Help: "Switches of connected clusters' virtual-cluster discovery, by the mode switched to: watched (a poll found a vcluster Service), polled (the last one went).",
		}, []string{"mode"}),
		discoveryPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "kube_discovery_polls_total",
			Help: "Polls of connected clusters for vcluster Services (one connection each), by result: found, none, error.",
		}, []string{"result"}),
	}
	// Both series exist from the start, so that increase() alerts work before the first failure.
	for _, r := range []string{resourceClusters, resourceSecrets, resourceVirtualClusters} {
		m.watchErrors.WithLabelValues(r)
	}
	for _, mode := range []string{"polled", "watched"} {
		m.discoveryClusters.WithLabelValues(mode)
		m.discoveryModeChanges.WithLabelValues(mode)
	}
	for _, c := range []prometheus.Collector{m.targetErrors, m.watchErrors, m.clusterWatchErrors,
		m.discoveryClusters, m.discoveryModeChanges, m.discoveryPolls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
