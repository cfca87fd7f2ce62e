package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupName is the API group of the management API.
const GroupName = "management.loft.sh"

// Version is the only served version.
const Version = "v1"

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// OwnedAccessKey is an access key as its owner sees it: the bearer token a client presents, who
// it stands for, and what it may reach.
type OwnedAccessKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OwnedAccessKeySpec   `json:"spec,omitempty"`
	Status OwnedAccessKeyStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// OwnedAccessKeyList is a list of access keys, as list and watch return them.
type OwnedAccessKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []OwnedAccessKey `json:"items"`
}

// OwnedAccessKeySpec is the desired state of an access key.
type OwnedAccessKeySpec struct {
	// DisplayName is a name for people.
	DisplayName string `json:"displayName,omitempty"`
	// Description says what the key is for.
	Description string `json:"description,omitempty"`
	// User owns the key; requests made with it act as this user.
	User string `json:"user,omitempty"`
	// Team owns the key when User is empty; requests act as loft:team:<team>.
	Team string `json:"team,omitempty"`
	// Subject is the subject of an OIDC token issued for the key.
	Subject string `json:"subject,omitempty"`
	// Groups are extra groups the key's requests carry.
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
	// Key is the bearer token itself. It is only ever returned in the response to a create, and
	// stored as a digest.
	Key string `json:"key,omitempty"`
	// Disabled keys are refused.
	Disabled bool `json:"disabled,omitempty"`
	// TTL is the key's lifetime in seconds; 0 means it never expires.
	TTL int64 `json:"ttl,omitempty"`
	// TTLAfterLastActivity counts TTL from the last use of the key instead of its creation.
	TTLAfterLastActivity bool `json:"ttlAfterLastActivity,omitempty"`
	// Scope narrows what the key may reach; empty means everything its owner may reach.
	Scope *AccessKeyScope `json:"scope,omitempty"`
	// Type says how the key came to be.
	Type AccessKeyType `json:"type,omitempty"`
	// Identity is the SSO identity behind the key.
	Identity *AccessKeyIdentity `json:"identity,omitempty"`
	// IdentityRefresh is when Identity was last refreshed.
	IdentityRefresh *metav1.Time `json:"identityRefresh,omitempty"`
	// OIDCProvider holds the OIDC client data of a key issued by the OIDC provider.
	OIDCProvider *AccessKeyOIDCProvider `json:"oidcProvider,omitempty"`
	// Parent is the name of the key this one was derived from.
	//
	// Deprecated: kept for compatibility with Loft.
	Parent string `json:"parent,omitempty"`
	// OIDCLogin holds the tokens of an OIDC login.
	//
	// Deprecated: kept for compatibility with Loft.
	OIDCLogin *AccessKeyOIDC `json:"oidcLogin,omitempty"`
}

// AccessKeyType says how a key came to be.
type AccessKeyType string

// The key types of Loft.
const (
	AccessKeyTypeNone             AccessKeyType = ""
	AccessKeyTypeLogin            AccessKeyType = "Login"
	AccessKeyTypeUser             AccessKeyType = "User"
	AccessKeyTypeOther            AccessKeyType = "Other"
	AccessKeyTypeReset            AccessKeyType = "Reset"
	AccessKeyTypeOIDCRefreshToken AccessKeyType = "OIDCRefreshToken"
	AccessKeyTypeNetworkPeer      AccessKeyType = "NetworkPeer"
	AccessKeyTypeWorkspace        AccessKeyType = "Workspace"
)

// AccessKeyScope narrows a key. A request passes when at least one entry matches it.
type AccessKeyScope struct {
	// Roles grant predefined sets of requests, such as loft-cli.
	// +listType=atomic
	Roles []AccessKeyScopeRole `json:"roles,omitempty"`
	// Projects allow everything within the listed projects ("*" for all).
	// +listType=atomic
	Projects []AccessKeyScopeProject `json:"projects,omitempty"`
	// Spaces allow namespaced requests in the listed spaces.
	// +listType=atomic
	Spaces []AccessKeyScopeSpace `json:"spaces,omitempty"`
	// VirtualClusters allow requests to the listed virtual clusters.
	// +listType=atomic
	VirtualClusters []AccessKeyScopeVirtualCluster `json:"virtualClusters,omitempty"`
	// Clusters allow requests to the listed connected clusters.
	// +listType=atomic
	Clusters []AccessKeyScopeCluster `json:"clusters,omitempty"`
	// Rules are audit-policy-style rules.
	//
	// Deprecated: still honoured, as in Loft.
	// +listType=atomic
	Rules []AccessKeyScopeRule `json:"rules,omitempty"`
	// AllowLoftCLI allows the read-only management requests that a CLI needs.
	AllowLoftCLI bool `json:"allowLoftCli,omitempty"`
}

// AccessKeyScopeRoleName names a predefined role.
type AccessKeyScopeRoleName string

// Known scope roles.
const (
	AccessKeyScopeRoleLoftCLI AccessKeyScopeRoleName = "loft-cli"
)

// AccessKeyScopeRole grants a role, optionally limited to projects and virtual clusters.
type AccessKeyScopeRole struct {
	// Role is the granted role.
	Role AccessKeyScopeRoleName `json:"role,omitempty"`
	// Projects limit the role to these projects.
	// +listType=atomic
	Projects []string `json:"projects,omitempty"`
	// VirtualClusters limit the role to these virtual clusters.
	// +listType=atomic
	VirtualClusters []string `json:"virtualClusters,omitempty"`
}

// AccessKeyScopeProject selects a project.
type AccessKeyScopeProject struct {
	Project string `json:"project,omitempty"`
}

// AccessKeyScopeSpace selects a space (a namespace) of a project; "*" selects all.
type AccessKeyScopeSpace struct {
	Project string `json:"project,omitempty"`
	Space   string `json:"space,omitempty"`
}

// AccessKeyScopeVirtualCluster selects a virtual cluster of a project; "*" selects all.
type AccessKeyScopeVirtualCluster struct {
	Project        string `json:"project,omitempty"`
	VirtualCluster string `json:"virtualCluster,omitempty"`
}

// AccessKeyScopeCluster selects a connected cluster.
type AccessKeyScopeCluster struct {
	Cluster string `json:"cluster,omitempty"`
}

// AccessKeyScopeRule matches requests the way a Kubernetes audit-policy rule does.
type AccessKeyScopeRule struct {
	// Verbs the rule matches; empty matches all.
	// +listType=atomic
	Verbs []string `json:"verbs,omitempty"`
	// Resources the rule matches; setting it makes the rule match resource requests only.
	// +listType=atomic
	Resources []GroupResources `json:"resources,omitempty"`
	// Namespaces the rule matches; "" matches non-namespaced resources.
	// +listType=atomic
	Namespaces []string `json:"namespaces,omitempty"`
	// NonResourceURLs the rule matches: "*", an exact path, or a prefix ending in "*".
	// +listType=atomic
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
	// RequestTargets the rule matches; empty matches all.
	// +listType=atomic
	RequestTargets []RequestTarget `json:"requestTargets,omitempty"`
	// Cluster, when set, limits the rule to requests to that cluster.
	Cluster string `json:"cluster,omitempty"`
	// VirtualClusters limit the rule to requests to these virtual clusters.
	// +listType=atomic
	VirtualClusters []AccessKeyVirtualCluster `json:"virtualClusters,omitempty"`
}

// GroupResources selects resources of one API group.
type GroupResources struct {
	// Group is the API group; "" is the core group.
	Group string `json:"group,omitempty"`
	// Resources are res, res/sub, *, */sub or res/*; empty matches all of the group.
	// +listType=atomic
	Resources []string `json:"resources,omitempty"`
	// ResourceNames narrow the match to objects of these names.
	// +listType=atomic
	ResourceNames []string `json:"resourceNames,omitempty"`
}

// RequestTarget is the kind of upstream a rule applies to.
type RequestTarget string

// Request targets of Loft.
const (
	RequestTargetManagement            RequestTarget = "Management"
	RequestTargetCluster               RequestTarget = "Cluster"
	RequestTargetVirtualCluster        RequestTarget = "VirtualCluster"
	RequestTargetProjectSpace          RequestTarget = "ProjectSpace"
	RequestTargetProjectVirtualCluster RequestTarget = "ProjectVirtualCluster"
)

// AccessKeyVirtualCluster names a virtual cluster by name and namespace.
type AccessKeyVirtualCluster struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// AccessKeyIdentity is the SSO identity behind a key.
type AccessKeyIdentity struct {
	UserID            string `json:"userId,omitempty"`
	Username          string `json:"username,omitempty"`
	PreferredUsername string `json:"preferredUsername,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"emailVerified,omitempty"`
	// Groups are the identity's groups at the SSO provider.
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
	// Connector is the SSO connector the identity came from.
	Connector string `json:"connector,omitempty"`
	// ConnectorData is never shown to end users.
	ConnectorData []byte `json:"connectorData,omitempty"`
}

// AccessKeyOIDCProvider is the OIDC client data of a key.
type AccessKeyOIDCProvider struct {
	ClientID    string `json:"clientId,omitempty"`
	Nonce       string `json:"nonce,omitempty"`
	RedirectURI string `json:"redirectUri,omitempty"`
	Scopes      string `json:"scopes,omitempty"`
}

// AccessKeyOIDC holds the tokens of an OIDC login.
//
// Deprecated: kept for compatibility with Loft.
type AccessKeyOIDC struct {
	IDToken      []byte       `json:"idToken,omitempty"`
	AccessToken  []byte       `json:"accessToken,omitempty"`
	RefreshToken []byte       `json:"refreshToken,omitempty"`
	LastRefresh  *metav1.Time `json:"lastRefresh,omitempty"`
}

// OwnedAccessKeyStatus is the observed state of an access key.
type OwnedAccessKeyStatus struct {
	// LastActivity is the last time the key was used.
	LastActivity *metav1.Time `json:"lastActivity,omitempty"`
}
