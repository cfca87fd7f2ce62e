package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Cluster is a connected cluster the caller's key can reach through the edge: read-only, read
// from the targets xds publishes (internal/catalog), filtered by the key's scope. The name is
// Loft's; the fields are the subset the edge knows.
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec,omitempty"`
	Status ClusterStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ClusterList is a list of clusters.
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Cluster `json:"items"`
}

// ClusterSpec describes a connected cluster.
type ClusterSpec struct {
	// DisplayName is the name shown to people (the cluster's name: targets carry no other).
	// +optional
	DisplayName string `json:"displayName,omitempty"`
}

// ClusterStatus is where the edge serves the cluster.
type ClusterStatus struct {
	// Path is the cluster's API server at the edge: /kubernetes/cluster/<name>.
	// +optional
	Path string `json:"path,omitempty"`
	// GrafanaPath is the cluster's Grafana at the edge; empty when it has none.
	// +optional
	GrafanaPath string `json:"grafanaPath,omitempty"`
	// Spaces are the cluster's namespaces that are spaces of a project.
	// +optional
	// +listType=atomic
	Spaces []ClusterSpace `json:"spaces,omitempty"`
}

// ClusterSpace is a namespace of a cluster that is a space of a project.
type ClusterSpace struct {
	// Name is the namespace.
	Name string `json:"name"`
	// Project is the project it belongs to.
	Project string `json:"project"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// VirtualClusterInstance is a virtual cluster the caller's key can reach: read-only, like
// Cluster. Unlike Loft's (which lives in its project's namespace), it is cluster-scoped and
// named <cluster>.<namespace>.<virtual cluster>, because the edge places virtual clusters by
// host cluster and namespace and a project is optional.
type VirtualClusterInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VirtualClusterInstanceSpec   `json:"spec,omitempty"`
	Status VirtualClusterInstanceStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// VirtualClusterInstanceList is a list of virtual clusters.
type VirtualClusterInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []VirtualClusterInstance `json:"items"`
}

// VirtualClusterInstanceSpec describes a virtual cluster.
type VirtualClusterInstanceSpec struct {
	// DisplayName is the name shown to people (the virtual cluster's name).
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// Project is the project the virtual cluster belongs to, if any.
	// +optional
	Project string `json:"project,omitempty"`
	// ClusterRef is where the virtual cluster runs, as Loft names it.
	ClusterRef VirtualClusterClusterRef `json:"clusterRef"`
}

// VirtualClusterClusterRef is where a virtual cluster runs.
type VirtualClusterClusterRef struct {
	// Cluster is the connected cluster.
	Cluster string `json:"cluster"`
	// Namespace is the namespace of Cluster it runs in.
	Namespace string `json:"namespace"`
	// VirtualCluster is its name.
	VirtualCluster string `json:"virtualCluster"`
}

// VirtualClusterInstanceStatus is where the edge serves the virtual cluster.
type VirtualClusterInstanceStatus struct {
	// Path is the virtual cluster's API server at the edge.
	// +optional
	Path string `json:"path,omitempty"`
}
