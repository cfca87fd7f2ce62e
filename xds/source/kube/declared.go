package kube

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
)

// declaredState is what a VirtualCluster object last translated to.
type declaredState struct {
	vclusterState
	// cluster is the connected cluster it names (the label of its error gauge).
	cluster string
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
	for _, u := range s.declaredObjects() {
		name := u.GetName()
		seen[name] = true
		log := s.log.With("virtualcluster_object", name)
		st := s.updateDeclared(u, log, invalid)
		if st.err != nil {
			failing[st.cluster]++
		}
		serveDeclared(st, log, served)
	}
	for name := range s.dstate {
		if !seen[name] {
			delete(s.dstate, name)
			s.log.Info("VirtualCluster deleted; its target is removed", "virtualcluster_object", name)
		}
	}
	return served, failing
}

// declaredObjects are the cached VirtualCluster objects, by name: of two with the same prefix,
// the first is served.
func (s *Source) declaredObjects() []*unstructured.Unstructured {
	objs := s.declared.GetStore().List()
	out := make([]*unstructured.Unstructured, len(objs))
	for i, obj := range objs {
		out[i] = obj.(*unstructured.Unstructured)
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// updateDeclared translates the VirtualCluster object u again if it or its Secret changed (or
// it was re-created) since the last build, and returns its state.
func (s *Source) updateDeclared(u *unstructured.Unstructured, log *slog.Logger, invalid func(error)) *declaredState {
	name := u.GetName()
	fp := s.fingerprint(u)
	st := s.dstate[name]
	if st != nil && st.uid != u.GetUID() {
		st = nil
	}
	if st != nil && st.fingerprint == fp {
		return st
	}
	var vc v1alpha1.VirtualCluster
	var r credential.Result
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &vc); err != nil {
		r = credential.Result{Ref: edgepath.Ref{Kind: edgepath.KindVirtualCluster}, Err: fmt.Errorf("not a valid VirtualCluster object: %w", err)}
	} else {
		r = declaredTarget(&vc, s.lookupSecret)
	}
	var prev *vclusterState
	if st != nil {
		prev = &st.vclusterState
	}
	next := s.applyVirtualCluster(log, r.Ref.Cluster, r.Ref.Namespace+"/"+r.Ref.VirtualCluster, prev, r, invalid)
	next.uid, next.fingerprint = u.GetUID(), fp
	st = &declaredState{vclusterState: *next, cluster: r.Ref.Cluster}
	s.dstate[name] = st
	return st
}

// serveDeclared adds st's good target, if it has one, to served, unless an object before it has
// the same prefix.
func serveDeclared(st *declaredState, log *slog.Logger, served map[string]model.Target) {
	if st.good == nil {
		return
	}
	if p := st.good.Ref.Prefix(); served[p].Ref.Kind != "" {
		if !st.shadowed {
			log.Error("VirtualCluster refused: another VirtualCluster object declares the same virtual cluster", "prefix", p)
			st.shadowed = true
		}
		return
	}
	st.shadowed = false
	served[st.good.Ref.Prefix()] = *st.good
}

// declaredTarget translates a VirtualCluster object with its Secret, by the rules of a
// Cluster's: the same Secret forms, refusals and overrides. Its server, from spec.server or
// the kubeconfig, must also pass credential.CheckServer: the kubeconfig is often a copy of
// vcluster's vc-<name> Secret, whose server a tenant wrote.
func declaredTarget(vc *v1alpha1.VirtualCluster, lookup secretLookup) credential.Result {
	ref := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: vc.Spec.Cluster, Namespace: vc.Spec.Namespace,
		VirtualCluster: vc.Spec.Name, Project: vc.Spec.Project}
	return credential.Build(ref, func() (model.Upstream, string, error) {
		u, where, err := clusterUpstream(v1alpha1.ClusterSpec{Config: vc.Spec.Config, Server: vc.Spec.Server, TLSServerName: vc.Spec.TLSServerName}, lookup)
		if err != nil {
			return u, where, err
		}
		if err := credential.CheckServer(u.URL); err != nil {
			from := "spec.server"
			if vc.Spec.Server == "" {
				from = where + ": the kubeconfig's server"
			}
			return model.Upstream{}, "", fmt.Errorf("%s: %w", from, err)
		}
		return u, where, nil
	})
}
