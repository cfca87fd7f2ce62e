package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// clusterTable prints what people look for in `kubectl get clusters`.
type clusterTable struct{}

var clusterColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the cluster"},
	{Name: "Path", Type: "string", Description: "status.path: the cluster's API server at the edge"},
	{Name: "Grafana", Type: "string", Description: "status.grafanaPath: its Grafana at the edge"},
	{Name: "Spaces", Type: "string", Description: "status.spaces: namespace=project"},
}

func (clusterTable) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return table(obj, clusterColumns, func(c *v1.Cluster) []any {
		var spaces []string
		for _, s := range c.Status.Spaces {
			spaces = append(spaces, s.Name+"="+s.Project)
		}
		return []any{c.Name, c.Status.Path, orNone(c.Status.GrafanaPath), joinOrNone(spaces)}
	})
}

// vciTable prints what people look for in `kubectl get virtualclusterinstances`.
type vciTable struct{}

var vciColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "<cluster>.<namespace>.<virtual cluster>"},
	{Name: "Virtual Cluster", Type: "string", Description: "spec.clusterRef.virtualCluster"},
	{Name: "Cluster", Type: "string", Description: "spec.clusterRef.cluster"},
	{Name: "Namespace", Type: "string", Description: "spec.clusterRef.namespace"},
	{Name: "Project", Type: "string", Description: "spec.project"},
	{Name: "Path", Type: "string", Priority: 1, Description: "status.path: its API server at the edge"},
}

func (vciTable) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return table(obj, vciColumns, func(v *v1.VirtualClusterInstance) []any {
		r := v.Spec.ClusterRef
		return []any{v.Name, r.VirtualCluster, r.Cluster, r.Namespace, orNone(v.Spec.Project), v.Status.Path}
	})
}
