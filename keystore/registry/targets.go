package registry

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// TargetsFunc returns the targets the edge routes: xds's published targets (internal/catalog),
// so that the lists below show what Envoy serves, whichever source xds reads.
type TargetsFunc func(ctx context.Context) ([]edgepath.Ref, error)

var (
	clusterResource = v1.Resource("clusters")
	vciResource     = v1.Resource("virtualclusterinstances")
)

// targets is what Clusters and VirtualClusterInstances share: the caller's reachable targets.
type targets struct {
	keys   Keys
	opts   Options
	source TargetsFunc
}

// reachable returns the targets of kind the request's key may reach (accesskey.Reaches: the
// target half of the edge's scope evaluation), with the connected clusters' Grafanas.
func (t targets) reachable(ctx context.Context, res string, kind edgepath.Kind) (out []edgepath.Ref, grafana map[string]bool, err error) {
	c, err := callerFrom(ctx, t.opts.AdminGroup, t.opts.Teams)
	if err != nil {
		return nil, nil, callerError(err)
	}
	own, err := requestKey(ctx, t.keys, c, v1.Resource(res), "")
	if err != nil {
		return nil, nil, err
	}
	var scope *v1.AccessKeyScope
	if own != nil {
		scope = own.Spec.Scope
	}
	all, err := t.source(ctx)
	if err != nil {
		return nil, nil, apierrors.NewServiceUnavailable(err.Error())
	}
	grafana = map[string]bool{}
	for _, ref := range all {
		switch {
		case ref.Kind == edgepath.KindGrafana && accesskey.Reaches(scope, ref):
			grafana[ref.Cluster] = true
		case ref.Kind == kind && accesskey.Reaches(scope, ref):
			out = append(out, ref)
		}
	}
	return out, grafana, nil
}

// Clusters serves the connected clusters the request's key can reach, read-only. A cluster
// out of the key's scope is not found, as if it did not exist: a key learns nothing of
// targets it cannot use, as the edge answers 401 for unknown targets.
type Clusters struct {
	targets
	rest.TableConvertor
}

// NewClusters returns the storage of clusters.
func NewClusters(keys Keys, opts Options, source TargetsFunc) *Clusters {
	return &Clusters{targets: targets{keys: keys, opts: opts, source: source}, TableConvertor: clusterTable{}}
}

var (
	_ rest.Getter = &Clusters{}
	_ rest.Lister = &Clusters{}
	_ rest.Scoper = &Clusters{}
)

func (*Clusters) New() runtime.Object     { return &v1.Cluster{} }
func (*Clusters) NewList() runtime.Object { return &v1.ClusterList{} }
func (*Clusters) Destroy()                {}
func (*Clusters) NamespaceScoped() bool   { return false }
func (*Clusters) GetSingularName() string { return "cluster" }

func clusterObject(ref edgepath.Ref, grafana bool) v1.Cluster {
	c := v1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: "Cluster"},
		ObjectMeta: metav1.ObjectMeta{Name: ref.Cluster},
		Spec:       v1.ClusterSpec{DisplayName: ref.Cluster},
		Status:     v1.ClusterStatus{Path: strings.TrimSuffix(ref.Prefix(), "/")},
	}
	if grafana {
		c.Status.GrafanaPath = strings.TrimSuffix(edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: ref.Cluster}.Prefix(), "/")
	}
	spaces, _ := edgepath.ParseSpaces(ref.Spaces) // xds published it: it parses
	for _, ns := range accesskey.SpaceNames(ref) {
		c.Status.Spaces = append(c.Status.Spaces, v1.ClusterSpace{Name: ns, Project: spaces[ns]})
	}
	return c
}

// List returns the reachable clusters that options select.
func (s *Clusters) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	refs, grafana, err := s.reachable(ctx, "clusters", edgepath.KindCluster)
	if err != nil {
		return nil, err
	}
	list := &v1.ClusterList{Items: []v1.Cluster{}}
	for _, ref := range refs {
		if c := clusterObject(ref, grafana[ref.Cluster]); match(&c.ObjectMeta) {
			list.Items = append(list.Items, c)
		}
	}
	return list, nil
}

// Get returns one reachable cluster; any other is not found.
func (s *Clusters) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	refs, grafana, err := s.reachable(ctx, "clusters", edgepath.KindCluster)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		if ref.Cluster == name {
			c := clusterObject(ref, grafana[name])
			return &c, nil
		}
	}
	return nil, apierrors.NewNotFound(clusterResource, name)
}

// VirtualClusterInstances serves the virtual clusters the request's key can reach, read-only,
// like Clusters.
type VirtualClusterInstances struct {
	targets
	rest.TableConvertor
}

// NewVirtualClusterInstances returns the storage of virtualclusterinstances.
func NewVirtualClusterInstances(keys Keys, opts Options, source TargetsFunc) *VirtualClusterInstances {
	return &VirtualClusterInstances{targets: targets{keys: keys, opts: opts, source: source}, TableConvertor: vciTable{}}
}

var (
	_ rest.Getter = &VirtualClusterInstances{}
	_ rest.Lister = &VirtualClusterInstances{}
	_ rest.Scoper = &VirtualClusterInstances{}
)

func (*VirtualClusterInstances) New() runtime.Object     { return &v1.VirtualClusterInstance{} }
func (*VirtualClusterInstances) NewList() runtime.Object { return &v1.VirtualClusterInstanceList{} }
func (*VirtualClusterInstances) Destroy()                {}
func (*VirtualClusterInstances) NamespaceScoped() bool   { return false }
func (*VirtualClusterInstances) GetSingularName() string { return "virtualclusterinstance" }

// VirtualClusterInstanceName is the object name of a virtual cluster:
// <cluster>.<namespace>.<virtual cluster> (each a DNS label, so the dots are unambiguous).
func VirtualClusterInstanceName(ref edgepath.Ref) string {
	return ref.Cluster + "." + ref.Namespace + "." + ref.VirtualCluster
}

func vciObject(ref edgepath.Ref) v1.VirtualClusterInstance {
	return v1.VirtualClusterInstance{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: "VirtualClusterInstance"},
		ObjectMeta: metav1.ObjectMeta{Name: VirtualClusterInstanceName(ref)},
		Spec: v1.VirtualClusterInstanceSpec{DisplayName: ref.VirtualCluster, Project: ref.Project,
			ClusterRef: v1.VirtualClusterClusterRef{Cluster: ref.Cluster, Namespace: ref.Namespace, VirtualCluster: ref.VirtualCluster}},
		Status: v1.VirtualClusterInstanceStatus{Path: strings.TrimSuffix(ref.Prefix(), "/")},
	}
}

// List returns the reachable virtual clusters that options select.
func (s *VirtualClusterInstances) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	refs, _, err := s.reachable(ctx, "virtualclusterinstances", edgepath.KindVirtualCluster)
	if err != nil {
		return nil, err
	}
	list := &v1.VirtualClusterInstanceList{Items: []v1.VirtualClusterInstance{}}
	for _, ref := range refs {
		if v := vciObject(ref); match(&v.ObjectMeta) {
			list.Items = append(list.Items, v)
		}
	}
	return list, nil
}

// Get returns one reachable virtual cluster; any other is not found.
func (s *VirtualClusterInstances) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	refs, _, err := s.reachable(ctx, "virtualclusterinstances", edgepath.KindVirtualCluster)
	if err != nil {
		return nil, err
	}
	for _, ref := range refs {
		if VirtualClusterInstanceName(ref) == name {
			v := vciObject(ref)
			return &v, nil
		}
	}
	return nil, apierrors.NewNotFound(vciResource, name)
}
