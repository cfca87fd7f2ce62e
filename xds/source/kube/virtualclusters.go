package kube

import (
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/types"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
)

// What the Kubernetes source keeps of each virtual cluster, discovered (discovered.go) or
// declared (declared.go): its last good target, served while a newer version does not
// translate.

// vclusterState is what a discovered virtual cluster last translated to.
type vclusterState struct {
	// uid tells a re-created Service from the one state was built for.
	uid types.UID
	// fingerprint is the resourceVersions of the Service, its Secret and its namespace.
	fingerprint string
	// good is the target served, if any: the latest version that translated.
	good *model.Target
	// err is why the latest version did not translate.
	err error
	// shadowed is whether a declared VirtualCluster with the same prefix is served instead
	// (logged once).
	shadowed bool
}

// applyVirtualCluster records the translation of a virtual cluster's new version, as apply
// does for a Cluster's targets: served if it translated, else its last good version kept;
// errors and recoveries logged once each.
func (s *Source) applyVirtualCluster(log *slog.Logger, cluster, key string, prev *vclusterState, r credential.Result, invalid func(error)) *vclusterState {
	if prev == nil {
		prev = &vclusterState{}
	}
	if r.Err == nil {
		t := r.Target
		switch {
		case prev.err != nil:
			log.Info("virtual cluster translates again", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix())
		case prev.good == nil:
			log.Info("virtual cluster served", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix(),
				"project", t.Ref.Project, "url", t.Upstream.URL.String())
		}
		return &vclusterState{good: &t}
	}
	next := &vclusterState{good: prev.good, err: r.Err}
	if prev.err != nil && prev.err.Error() == r.Err.Error() {
		return next
	}
	msg := "virtual cluster refused; it is not served"
	if prev.good != nil {
		msg = "virtual cluster refused; its last good version stays in force"
	}
	log.Error(msg, "cluster", cluster, "kind", edgepath.KindVirtualCluster, "virtual_cluster", key, "error", r.Err)
	if invalid != nil {
		invalid(fmt.Errorf("cluster %s: virtual cluster %s: %w", cluster, key, r.Err))
	}
	return next
}

// setVirtualClusterErrors sets keygate_xds_kube_target_errors{kind="virtualcluster"} of each
// Cluster to its number of virtual clusters (discovered and declared) that do not translate,
// and removes the series of those that have none any more.
func (s *Source) setVirtualClusterErrors(failing map[string]int) {
	kind := string(edgepath.KindVirtualCluster)
	for cluster := range s.errorClusters {
		if failing[cluster] == 0 {
			s.metrics.targetErrors.DeleteLabelValues(cluster, kind)
			delete(s.errorClusters, cluster)
		}
	}
	for cluster, n := range failing {
		if n > 0 {
			s.metrics.targetErrors.WithLabelValues(cluster, kind).Set(float64(n))
			s.errorClusters[cluster] = true
		}
	}
}
