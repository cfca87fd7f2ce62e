// Package v1alpha1 is the targets.keygate.dev/v1alpha1 API: the Cluster objects from which xds's
// Kubernetes source learns the connected clusters (CRD: manifests/crds/). The types are plain
// structs read from unstructured objects (the dynamic client), so no generated code is needed;
// the CRD's schema is the source of truth for validation and these mirror it.
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of the API.
const (
	Group   = "targets.keygate.dev"
	Version = "v1alpha1"
)

// ClusterResource is the resource of Cluster objects (cluster-scoped).
var ClusterResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "clusters"}

// Keys of the Secrets that Cluster objects reference.
const (
	// KeyKubeconfig is the default key of a kubeconfig (ClusterConfig.Key overrides it).
	KeyKubeconfig = "kubeconfig"
	// KeyCA is the PEM CA bundle that verifies the upstream (as in service-account token and
	// cert-manager Secrets).
	KeyCA = "ca.crt"
	// KeyToken is a bearer token (as in service-account token Secrets).
	KeyToken = "token"
	// KeyTLSCert and KeyTLSKey are a PEM client certificate and its key (as in kubernetes.io/tls
	// Secrets).
	KeyTLSCert = "tls.crt"
	KeyTLSKey  = "tls.key"
)

// Cluster is a connected cluster of the edge, served at /kubernetes/cluster/<name>/.
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterSpec `json:"spec"`
}

// ClusterSpec says where the cluster's API server is and how the edge authenticates to it.
type ClusterSpec struct {
	// DisplayName and Description are for people (as in Loft's Cluster).
	DisplayName string `json:"displayName,omitempty"`
	Description string `json:"description,omitempty"`
	// Config is the Secret holding the edge's credential for the cluster (Loft: spec.config).
	Config ClusterConfig `json:"config"`
	// Server overrides the kubeconfig's server URL; required without a kubeconfig.
	Server string `json:"server,omitempty"`
	// TLSServerName overrides the name verified in the API server's certificate.
	TLSServerName string `json:"tlsServerName,omitempty"`
	// Grafana is the cluster's Grafana, served at /grafana/<name>/.
	Grafana *Grafana `json:"grafana,omitempty"`
	// Spaces are namespaces of the cluster that belong to a project.
	Spaces []Space `json:"spaces,omitempty"`
}

// SecretRef names a Secret. Cluster objects are cluster-scoped, so the namespace is explicit.
type SecretRef struct {
	SecretName      string `json:"secretName"`
	SecretNamespace string `json:"secretNamespace"`
}

// ClusterConfig is the Secret with a cluster's credential and, optionally, the key of its
// kubeconfig.
type ClusterConfig struct {
	SecretRef `json:",inline"`
	// Key is the Secret's key holding a kubeconfig; empty means KeyKubeconfig if present, else
	// the individual keys (KeyCA, KeyToken, KeyTLSCert, KeyTLSKey).
	Key string `json:"key,omitempty"`
}

// Grafana is a cluster's Grafana.
type Grafana struct {
	URL           string `json:"url"`
	TLSServerName string `json:"tlsServerName,omitempty"`
	// Config is a Secret with KeyCA and optionally KeyTLSCert and KeyTLSKey.
	Config *SecretRef `json:"config,omitempty"`
}

// Space is a namespace of the cluster that is a space of a project.
type Space struct {
	Name    string `json:"name"`
	Project string `json:"project"`
}

// Annotations and labels on the vcluster Services of connected clusters, read by virtual-cluster
// discovery (xds/README.md, "Virtual clusters").
const (
	// AnnotationServer was the https URL at which the edge reached a discovered virtual cluster.
	// The namespace's tenants can write it, so discovery no longer reads it: a Service that
	// carries it is refused (with a message saying so), and a VirtualCluster object's
	// spec.server declares another address (xds/README.md, "Trust").
	AnnotationServer = Group + "/server"
	// AnnotationTLSServerName is the name to verify in the virtual cluster's certificate;
	// default <name>.<namespace>.svc, which vcluster's certificate always carries.
	AnnotationTLSServerName = Group + "/tls-server-name"
	// LabelProject is Loft's project label. Discovery reads it from a vcluster's namespace only
	// (cluster admins label namespaces), never from the Service, which tenants write.
	LabelProject = "loft.sh/project"
)

// VirtualClusterResource is the resource of VirtualCluster objects (cluster-scoped).
var VirtualClusterResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "virtualclusters"}

// VirtualCluster is a declared virtual cluster of a connected cluster, served at
// /kubernetes/virtualcluster/<cluster>/<namespace>/<name>/: for virtual clusters that
// discovery cannot see or reach, and to override what it finds (a declared one wins).
type VirtualCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VirtualClusterSpec `json:"spec"`
}

// VirtualClusterSpec names the virtual cluster and says how the edge reaches it, as
// ClusterSpec does for a cluster.
type VirtualClusterSpec struct {
	// Cluster is the connected cluster (a Cluster's name) the virtual cluster runs in.
	Cluster string `json:"cluster"`
	// Namespace is the namespace of the connected cluster it runs in.
	Namespace string `json:"namespace"`
	// Name is the virtual cluster's name.
	Name string `json:"name"`
	// Project is the project it belongs to, if any.
	Project string `json:"project,omitempty"`
	// Config is the Secret with the edge's credential (vcluster's vc-<name> Secret copied to
	// the platform, with Key "config", or a token or TLS Secret).
	Config ClusterConfig `json:"config"`
	// Server overrides the kubeconfig's server; required without a kubeconfig.
	Server string `json:"server,omitempty"`
	// TLSServerName overrides the name verified in the virtual cluster's certificate.
	TLSServerName string `json:"tlsServerName,omitempty"`
}
