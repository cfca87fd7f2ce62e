package kube

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
)

// What the Kubernetes source makes of Cluster objects, and the build of the whole model.

// clusterState is what a Cluster object last translated to.
type clusterState struct {
	// uid tells a re-created object from the one state was built for.
	uid types.UID
	// fingerprint is the resourceVersions of the object and its Secrets that state was built
	// from: an equal fingerprint means nothing to translate again.
	fingerprint string
	// good is the target of each kind that is served: the latest version that translated.
	good map[edgepath.Kind]model.Target
	// errs is why the latest version of each kind did not translate.
	errs map[edgepath.Kind]error
}

// build translates every Cluster whose object or Secrets changed since the last build, reports
// the targets that newly fail, and returns the model of every served target.
func (s *Source) build(invalid func(error)) model.Model {
	seen := make(map[string]bool, len(s.state))
	var targets []model.Target
	for _, obj := range s.clusters.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		name := u.GetName()
		seen[name] = true
		fp := s.fingerprint(u)
		st := s.state[name]
		if st != nil && st.uid != u.GetUID() {
			// Deleted and created again between two builds: the old object's last good targets
			// must not stand in for the new one's.
			s.metrics.targetErrors.DeletePartialMatch(prometheus.Labels{"cluster": name})
			st = nil
		}
		if st == nil || st.fingerprint != fp {
			st = s.apply(name, st, fp, s.targetsOf(u), invalid)
			st.uid = u.GetUID()
			s.state[name] = st
		}
		for _, t := range st.good {
			targets = append(targets, t)
		}
	}
	for name := range s.state {
		if !seen[name] {
			delete(s.state, name)
			s.metrics.targetErrors.DeletePartialMatch(prometheus.Labels{"cluster": name})
			s.log.Info("Cluster deleted; its targets are removed", "cluster", name)
		}
	}
	declared, failing := s.buildDeclared(invalid)
	for _, t := range declared {
		targets = append(targets, t)
	}
	targets = append(targets, s.buildVirtualClusters(declared, failing, invalid)...)
	s.setVirtualClusterErrors(failing)
	return model.New(targets...)
}

// fingerprint identifies the versions of a Cluster object and its Secrets.
func (s *Source) fingerprint(u *unstructured.Unstructured) string {
	var b strings.Builder
	b.WriteString(u.GetResourceVersion())
	for _, key := range secretRefs(u) {
		b.WriteString(" " + key + "@")
		if obj, ok, _ := s.secrets.GetIndexer().GetByKey(key); ok {
			b.WriteString(obj.(*corev1.Secret).ResourceVersion)
		}
	}
	return b.String()
}

// targetsOf decodes a Cluster object and makes its targets with the cached Secrets.
func (s *Source) targetsOf(u *unstructured.Unstructured) []credential.Result {
	var c v1alpha1.Cluster
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
		ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: u.GetName()}
		return []credential.Result{{Ref: ref, Err: fmt.Errorf("not a valid Cluster object: %w", err)}}
	}
	return clusterTargets(&c, s.lookupSecret)
}

func (s *Source) lookupSecret(ref v1alpha1.SecretRef) (*corev1.Secret, error) {
	name := ref.SecretNamespace + "/" + ref.SecretName
	if ns := s.opts.SecretNamespace; ns != "" && ref.SecretNamespace != ns {
		return nil, fmt.Errorf("Secret %s: xds reads Secrets in namespace %q only (--kube-secret-namespace)", name, ns)
	}
	obj, ok, err := s.secrets.GetIndexer().GetByKey(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("Secret %s not found", name)
	}
	return obj.(*corev1.Secret), nil
}

// apply records the translation of a Cluster's new version: a target that translated is
// served; one that did not keeps its last good version, if it has one. New errors and
// recoveries are logged once each, not at every build.
func (s *Source) apply(name string, prev *clusterState, fp string, results []credential.Result, invalid func(error)) *clusterState {
	if prev == nil {
		prev = &clusterState{}
	}
	next := &clusterState{fingerprint: fp, good: map[edgepath.Kind]model.Target{}, errs: map[edgepath.Kind]error{}}
	for _, r := range results {
		kind := r.Ref.Kind
		prevErr := prev.errs[kind]
		if r.Err == nil {
			next.good[kind] = r.Target
			if prevErr != nil {
				s.log.Info("Cluster target translates again", "cluster", name, "kind", kind)
			}
			continue
		}
		next.errs[kind] = r.Err
		last, kept := prev.good[kind]
		if kept {
			next.good[kind] = last
		}
		if prevErr != nil && prevErr.Error() == r.Err.Error() {
			continue
		}
		msg := "Cluster target refused; it is not served"
		if kept {
			msg = "Cluster target refused; its last good version stays in force"
		}
		s.log.Error(msg, "cluster", name, "kind", kind, "error", r.Err)
		if invalid != nil {
			invalid(fmt.Errorf("cluster %s: %s: %w", name, kind, r.Err))
		}
	}
	for kind := range prev.errs {
		if _, still := next.errs[kind]; !still {
			s.metrics.targetErrors.DeleteLabelValues(name, string(kind))
		}
	}
	for kind := range next.errs {
		s.metrics.targetErrors.WithLabelValues(name, string(kind)).Set(1)
	}
	return next
}
