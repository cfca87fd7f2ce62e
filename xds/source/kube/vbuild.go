package kube

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// buildVirtualClusters keeps a discoverer running for each Cluster whose cluster target is
// good (restarted when that target's credential changes, stopped when the Cluster goes),
// translates the virtual clusters that changed since the last build, and returns every served
// virtualcluster target but those whose prefix a declared VirtualCluster has (by prefix in
// declared). A connected cluster whose discovery has not synced (just started, unreachable
// since xds started) keeps its virtual clusters as they were. It adds to failing, by Cluster,
// the virtual clusters that do not translate.
func (s *Source) buildVirtualClusters(declared map[string]model.Target, failing map[string]int, invalid func(error)) []model.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discoverers == nil {
		return nil // closed
	}
	var targets []model.Target
	for name, st := range s.state {
		ct, ok := st.good[edgepath.KindCluster]
		if s.opts.NoVirtualClusters || !ok {
			continue
		}
		d := s.discoverers[name]
		if fp := upstreamFingerprint(ct.Upstream); d == nil || d.fingerprint != fp {
			if d != nil {
				// A new credential (or address) for the cluster: the informers must use it. The
				// virtual clusters stay as they are until the new discoverer has synced.
				d.close()
				delete(s.discoverers, name)
				s.log.Info("connected cluster's credential changed; restarting virtual-cluster discovery", "cluster", name)
			}
			var err error
			if d, err = startDiscoverer(name, ct.Upstream, s.log, s.metrics, s.changed); err != nil {
				s.log.Error("cannot start virtual-cluster discovery", "cluster", name, "error", err)
				d = nil
			} else {
				s.discoverers[name] = d
			}
		}
		vs := s.vstate[name]
		if vs == nil {
			vs = map[string]*vclusterState{}
			s.vstate[name] = vs
		}
		if d != nil && d.synced() {
			s.discover(name, d, vs, invalid)
		}
		for key, v := range vs {
			if v.err != nil {
				failing[name]++
			}
			if v.good == nil {
				continue
			}
			if _, ok := declared[v.good.Ref.Prefix()]; ok {
				if !v.shadowed {
					s.log.Info("virtual cluster discovered and declared; the declared VirtualCluster is served",
						"cluster", name, "virtual_cluster", key, "prefix", v.good.Ref.Prefix())
					v.shadowed = true
				}
				continue
			}
			v.shadowed = false
			targets = append(targets, *v.good)
		}
	}
	// Clusters deleted, re-created, or without a good cluster target any more: their discovery
	// stops and their virtual clusters go.
	for name, d := range s.discoverers {
		st := s.state[name]
		if st != nil && !s.opts.NoVirtualClusters {
			if _, ok := st.good[edgepath.KindCluster]; ok {
				continue
			}
		}
		d.close()
		delete(s.discoverers, name)
		s.metrics.clusterWatchErrors.DeletePartialMatch(prometheus.Labels{"cluster": name})
	}
	for name := range s.vstate {
		if _, ok := s.discoverers[name]; !ok {
			if len(s.vstate[name]) > 0 {
				s.log.Info("virtual clusters of a removed Cluster are removed", "cluster", name, "virtual_clusters", len(s.vstate[name]))
			}
			delete(s.vstate, name)
		}
	}
	return targets
}

// discover brings vs, the virtual clusters of Cluster name, up to date with the synced caches
// of its discoverer d.
func (s *Source) discover(name string, d *discoverer, vs map[string]*vclusterState, invalid func(error)) {
	svcs := d.vclusterServices()
	d.watchSecrets(svcs)
	seen := make(map[string]bool, len(svcs))
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		seen[key] = true
		prev := vs[key]
		if prev != nil && prev.uid != svc.UID {
			// Deleted and created again between two builds: the old one's last good target
			// must not stand in for the new one.
			prev = nil
			delete(vs, key)
		}
		secret, synced := d.secret(key)
		if !synced {
			continue // pending: its Secret's cache is filling; nothing to say yet
		}
		labels, nsVersion := d.namespaceLabels(svc.Namespace)
		secretVersion := "none"
		if secret != nil {
			secretVersion = secret.ResourceVersion
		}
		fp := svc.ResourceVersion + " " + secretVersion + " " + nsVersion
		if prev != nil && prev.fingerprint == fp {
			continue
		}
		next := s.applyVirtualCluster(s.log, name, key, prev, virtualClusterTarget(name, svc, secret, labels), invalid)
		next.uid, next.fingerprint = svc.UID, fp
		vs[key] = next
	}
	for key, v := range vs {
		if !seen[key] {
			delete(vs, key)
			if v.good != nil {
				s.log.Info("virtual cluster's Service deleted; its target is removed", "cluster", name, "virtual_cluster", key)
			}
		}
	}
}

// applyVirtualCluster records the translation of a virtual cluster's new version, as apply
// does for a Cluster's targets: served if it translated, else its last good version kept;
// errors and recoveries logged once each.
func (s *Source) applyVirtualCluster(log *slog.Logger, cluster, key string, prev *vclusterState, r result, invalid func(error)) *vclusterState {
	if prev == nil {
		prev = &vclusterState{}
	}
	if r.err == nil {
		t := r.target
		switch {
		case prev.err != nil:
			log.Info("virtual cluster translates again", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix())
		case prev.good == nil:
			log.Info("virtual cluster served", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix(),
				"project", t.Ref.Project, "url", t.Upstream.URL.String())
		}
		return &vclusterState{good: &t}
	}
	next := &vclusterState{good: prev.good, err: r.err}
	if prev.err != nil && prev.err.Error() == r.err.Error() {
		return next
	}
	msg := "virtual cluster refused; it is not served"
	if prev.good != nil {
		msg = "virtual cluster refused; its last good version stays in force"
	}
	log.Error(msg, "cluster", cluster, "kind", edgepath.KindVirtualCluster, "virtual_cluster", key, "error", r.err)
	if invalid != nil {
		invalid(fmt.Errorf("cluster %s: virtual cluster %s: %w", cluster, key, r.err))
	}
	return next
}

// buildDeclared translates every VirtualCluster object whose object or Secret changed since the
// last build, as build does for Clusters, and returns the served ones by prefix. It adds to
// failing, by the Cluster they name, those that do not translate. Two objects with the same
// prefix: the first by object name is served, the other refused.
func (s *Source) buildDeclared(invalid func(error)) (map[string]model.Target, map[string]int) {
	served := map[string]model.Target{}
	failing := map[string]int{}
	if s.declared == nil {
		return served, failing
	}
	seen := map[string]bool{}
	objs := s.declared.GetStore().List()
	slices.SortFunc(objs, func(a, b any) int {
		return strings.Compare(a.(*unstructured.Unstructured).GetName(), b.(*unstructured.Unstructured).GetName())
	})
	for _, obj := range objs {
		u := obj.(*unstructured.Unstructured)
		name := u.GetName()
		seen[name] = true
		log := s.log.With("virtualcluster_object", name)
		fp := s.fingerprint(u)
		st := s.dstate[name]
		if st != nil && st.uid != u.GetUID() {
			st = nil
		}
		if st == nil || st.fingerprint != fp {
			var vc v1alpha1.VirtualCluster
			var r result
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &vc); err != nil {
				r = result{ref: edgepath.Ref{Kind: edgepath.KindVirtualCluster}, err: fmt.Errorf("not a valid VirtualCluster object: %w", err)}
			} else {
				r = declaredTarget(&vc, s.lookupSecret)
			}
			var prev *vclusterState
			if st != nil {
				prev = &st.vclusterState
			}
			next := s.applyVirtualCluster(log, r.ref.Cluster, r.ref.Namespace+"/"+r.ref.VirtualCluster, prev, r, invalid)
			next.uid, next.fingerprint = u.GetUID(), fp
			st = &declaredState{vclusterState: *next, cluster: r.ref.Cluster}
			s.dstate[name] = st
		}
		if st.err != nil {
			failing[st.cluster]++
		}
		if st.good == nil {
			continue
		}
		if p := st.good.Ref.Prefix(); served[p].Ref.Kind != "" {
			if !st.shadowed {
				log.Error("VirtualCluster refused: another VirtualCluster object declares the same virtual cluster", "prefix", p)
				st.shadowed = true
			}
			continue
		}
		st.shadowed = false
		served[st.good.Ref.Prefix()] = *st.good
	}
	for name := range s.dstate {
		if !seen[name] {
			delete(s.dstate, name)
			s.log.Info("VirtualCluster deleted; its target is removed", "virtualcluster_object", name)
		}
	}
	return served, failing
}

// declaredTarget translates a VirtualCluster object with its Secret, by the rules of a
// Cluster's: the same Secret forms, refusals and overrides.
func declaredTarget(vc *v1alpha1.VirtualCluster, lookup secretLookup) result {
	ref := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: vc.Spec.Cluster, Namespace: vc.Spec.Namespace,
		VirtualCluster: vc.Spec.Name, Project: vc.Spec.Project}
	return build(ref, func() (model.Upstream, string, error) {
		return clusterUpstream(v1alpha1.ClusterSpec{Config: vc.Spec.Config, Server: vc.Spec.Server, TLSServerName: vc.Spec.TLSServerName}, lookup)
	})
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
