package kube

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/discover"
)

// buildVirtualClusters keeps a Discoverer running for each Cluster whose cluster target is
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
		var d *discover.Discoverer
		if s.discovering {
			d = s.discoverer(name, ct.Upstream)
		}
		vs := s.vstate[name]
		if vs == nil {
			vs = map[string]*vclusterState{}
			s.vstate[name] = vs
		}
		if d != nil {
			if found, known := d.Discover(); known {
				s.updateDiscovered(name, found, vs, invalid)
			}
		}
		targets = append(targets, s.servedDiscovered(name, vs, declared, failing)...)
	}
	s.stopDiscovery()
	s.countModes()
	return targets
}

// countModes sets keygate_xds_kube_discovery_clusters, the connected clusters by discovery mode.
func (s *Source) countModes() {
	var n [2]int
	for _, d := range s.discoverers {
		n[d.Mode()]++
	}
	for _, m := range []discover.Mode{discover.Polled, discover.Watched} {
		s.metrics.discoveryClusters.WithLabelValues(m.String()).Set(float64(n[m]))
	}
}

// discoverer returns the Discoverer of Cluster name, started again if the upstream u of its
// cluster target changed; nil if it cannot start (the next build tries again).
func (s *Source) discoverer(name string, u model.Upstream) *discover.Discoverer {
	d := s.discoverers[name]
	if d != nil && d.Fingerprint() == discover.Fingerprint(u) {
		return d
	}
	// A watched cluster's new discoverer watches at once: its virtual clusters need not wait for
	// a poll.
	watch := d != nil && d.Mode() == discover.Watched
	if d != nil {
		// A new credential (or address) for the cluster: the informers must use it. The
		// virtual clusters stay as they are until the new discoverer has synced.
		d.Close()
		delete(s.discoverers, name)
		s.log.Info("connected cluster's credential changed; restarting virtual-cluster discovery", "cluster", name)
	}
	d, err := discover.Start(name, u, discover.Options{Log: s.log, WatchErrors: s.metrics.clusterWatchErrors,
		ModeChanges: s.metrics.discoveryModeChanges, Changed: s.changed, Poller: s.poller, Watch: watch, Connecting: s.connecting})
	if err != nil {
		s.log.Error("cannot start virtual-cluster discovery", "cluster", name, "error", err)
		return nil
	}
	s.discoverers[name] = d
	return d
}

// updateDiscovered brings vs, the virtual clusters of Cluster name, up to date with found, what
// its Discoverer knows.
func (s *Source) updateDiscovered(name string, found []discover.VirtualCluster, vs map[string]*vclusterState, invalid func(error)) {
	seen := make(map[string]bool, len(found))
	for _, v := range found {
		seen[v.Key] = true
		prev := vs[v.Key]
		if prev != nil && prev.uid != v.UID {
			// Deleted and created again between two builds: the old one's last good target
			// must not stand in for the new one.
			prev = nil
			delete(vs, v.Key)
		}
		if v.Pending || (prev != nil && prev.fingerprint == v.Fingerprint) {
			continue // pending: its Secret's cache is filling; nothing to say yet
		}
		next := s.applyVirtualCluster(s.log, name, v.Key, prev, v.Target(), invalid)
		next.uid, next.fingerprint = v.UID, v.Fingerprint
		vs[v.Key] = next
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

// servedDiscovered returns the good targets of vs, the virtual clusters of Cluster name, but
// those a declared VirtualCluster stands in for, and counts in failing those that do not
// translate.
func (s *Source) servedDiscovered(name string, vs map[string]*vclusterState, declared map[string]model.Target, failing map[string]int) []model.Target {
	var targets []model.Target
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
	return targets
}

// stopDiscovery stops the discovery of Clusters deleted, re-created, or without a good cluster
// target any more; their virtual clusters go.
func (s *Source) stopDiscovery() {
	for name, d := range s.discoverers {
		st := s.state[name]
		if st != nil && !s.opts.NoVirtualClusters {
			if _, ok := st.good[edgepath.KindCluster]; ok {
				continue
			}
		}
		d.Close()
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
}
