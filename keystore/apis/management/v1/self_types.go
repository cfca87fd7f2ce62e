package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Self answers "who am I, and what may my key do": a client creates one (it is never stored) and
// the response's status describes the caller and the access key of the request. Loft's CLI does
// this on login and before building kubeconfigs, so the shape follows Loft's exactly.
type Self struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SelfSpec   `json:"spec,omitempty"`
	Status SelfStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// SelfList exists because every kind a server registers has a list kind; Self itself is never
// listed.
type SelfList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Self `json:"items"`
}

// SelfSpec is what the caller asks about.
type SelfSpec struct {
	// AccessKey is an access key to describe instead of the one the request carries.
	// +optional
	AccessKey string `json:"accessKey,omitempty"`
}

// SelfStatus describes the caller and the key of the request.
type SelfStatus struct {
	// User is the user the key belongs to; empty for a team's key.
	// +optional
	User *UserInfo `json:"user,omitempty"`
	// Team is the team the key belongs to; empty for a user's key.
	// +optional
	Team *EntityInfo `json:"team,omitempty"`
	// AccessKey is the name of the access key.
	// +optional
	AccessKey string `json:"accessKey,omitempty"`
	// AccessKeyScope is the scope of the access key; empty means not narrowed.
	// +optional
	AccessKeyScope *AccessKeyScope `json:"accessKeyScope,omitempty"`
	// AccessKeyType is the type of the access key.
	// +optional
	AccessKeyType AccessKeyType `json:"accessKeyType,omitempty"`
	// Subject is the subject of the caller, as OIDC tokens carry it.
	// +optional
	Subject string `json:"subject,omitempty"`
	// UID is the caller's uid.
	// +optional
	UID string `json:"uid,omitempty"`
	// Groups are the groups the caller's requests carry.
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
}

// UserInfo describes a user and the teams the user is in.
type UserInfo struct {
	EntityInfo `json:",inline"`

	// Teams are the teams the user is part of.
	// +optional
	// +listType=atomic
	Teams []*EntityInfo `json:"teams,omitempty"`
}

// EntityInfo describes a user or a team, as Loft shows them.
type EntityInfo struct {
	// Name is the object name of the user or team.
	// +optional
	Name string `json:"name,omitempty"`
	// DisplayName is the name shown to people.
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// Icon is the URL of an icon for the user or team.
	// +optional
	Icon string `json:"icon,omitempty"`
	// Username is the name the user logs in with.
	// +optional
	Username string `json:"username,omitempty"`
	// Email is the user's email address.
	// +optional
	Email string `json:"email,omitempty"`
	// Subject is the user's subject, as OIDC tokens carry it.
	// +optional
	Subject string `json:"subject,omitempty"`
}
