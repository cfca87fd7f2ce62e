package kube

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/target"
)

// buildVirtualClusters keeps a discoverer running for each Cluster whose cluster target is
// good (restarted when that target's credential changes, stopped when the Cluster goes),
// translates the virtual clusters that changed since the last build, and returns every served
// virtualcluster target. A connected cluster whose discovery has not synced (just started,
// unreachable since xds started) keeps its virtual clusters as they were.
func (s *Source) buildVirtualClusters(invalid func(error)) []model.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discoverers == nil {
		return nil // closed
	}
	var targets []model.Target
	for name, st := range s.state {
		ct, ok := st.good[target.KindCluster]
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
		failing := 0
		for _, v := range vs {
			if v.good != nil {
				targets = append(targets, *v.good)
			}
			if v.err != nil {
				failing++
			}
		}
		if failing > 0 {
			s.metrics.targetErrors.WithLabelValues(name, string(target.KindVirtualCluster)).Set(float64(failing))
		} else {
			s.metrics.targetErrors.DeleteLabelValues(name, string(target.KindVirtualCluster))
		}
	}
	// Clusters deleted, re-created, or without a good cluster target any more: their discovery
	// stops and their virtual clusters go.
	for name, d := range s.discoverers {
		st := s.state[name]
		if st != nil && !s.opts.NoVirtualClusters {
			if _, ok := st.good[target.KindCluster]; ok {
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
			s.metrics.targetErrors.DeleteLabelValues(name, string(target.KindVirtualCluster))
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
		next := s.applyVirtualCluster(name, key, prev, virtualClusterTarget(name, svc, secret, labels), invalid)
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
func (s *Source) applyVirtualCluster(cluster, key string, prev *vclusterState, r result, invalid func(error)) *vclusterState {
	if prev == nil {
		prev = &vclusterState{}
	}
	if r.err == nil {
		t := r.target
		switch {
		case prev.err != nil:
			s.log.Info("virtual cluster translates again", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix())
		case prev.good == nil:
			s.log.Info("virtual cluster discovered", "cluster", cluster, "virtual_cluster", key, "prefix", t.Ref.Prefix(),
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
	s.log.Error(msg, "cluster", cluster, "kind", target.KindVirtualCluster, "virtual_cluster", key, "error", r.err)
	if invalid != nil {
		invalid(fmt.Errorf("cluster %s: virtual cluster %s: %w", cluster, key, r.err))
	}
	return next
}
