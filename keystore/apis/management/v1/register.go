package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the group and version of the served API.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: Version}

// internalGroupVersion is the version a k8s.io/apiserver server decodes into before handing an
// object to its storage.
var internalGroupVersion = schema.GroupVersion{Group: GroupName, Version: runtime.APIVersionInternal}

// Resource qualifies a resource name with the group, as API errors name resources.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder collects the functions that add this group to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the group's kinds, in v1 and internal, to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds in both versions. There is one served version, so a separate
// internal type would only be a copy of the v1 type plus conversion functions that could drift;
// registering the same Go type under the internal version lets the scheme "convert" by merely
// setting the kind (runtime.Scheme does no conversion when the target version already knows the
// type).
func addKnownTypes(scheme *runtime.Scheme) error {
	for _, gv := range []schema.GroupVersion{SchemeGroupVersion, internalGroupVersion} {
		scheme.AddKnownTypes(gv,
			&OwnedAccessKey{},
			&OwnedAccessKeyList{},
			&Self{},
			&SelfList{},
			&User{},
			&UserList{},
			&Team{},
			&TeamList{},
			&Cluster{},
			&ClusterList{},
			&VirtualClusterInstance{},
			&VirtualClusterInstanceList{},
		)
	}
	// Registers ListOptions, WatchEvent, Status and friends in v1, which every served group
	// version needs for its query parameters and watch streams.
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
