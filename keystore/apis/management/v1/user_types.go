package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// User is a person (or robot) of the user store (keystore/users), as Loft's management API
// serves it: the fields the edge uses, with Loft's JSON names. It never carries a password nor
// its hash; passwords are set with `keystore create-user` and `keystore set-password`.
type User struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   UserSpec   `json:"spec,omitempty"`
	Status UserStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// UserList is a list of users.
type UserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []User `json:"items"`
}

// UserSpec is what an admin sets of a user.
type UserSpec struct {
	// DisplayName is the name shown to people.
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// Username is the name the user logs in with: always metadata.name here (the server fills
	// it in; any other value is refused).
	// +optional
	Username string `json:"username,omitempty"`
	// Email is the user's email address.
	// +optional
	Email string `json:"email,omitempty"`
	// Subject is the user's subject as tokens present it: always metadata.name here (the
	// server fills it in; any other value is refused).
	// +optional
	Subject string `json:"subject,omitempty"`
	// Groups are the groups every request of the user carries upstream.
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
	// Disabled users cannot log in, and the edge refuses every access key of theirs.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// UserStatus is what the server says of a user.
type UserStatus struct {
	// Teams are the teams the user is in. Membership is changed through a Team's spec.users
	// (or `keystore set-user --teams`), not here.
	// +optional
	// +listType=atomic
	Teams []string `json:"teams,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Team is a named set of users. Access keys of a team (spec.team) are usable and managed by its
// members.
type Team struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TeamSpec   `json:"spec,omitempty"`
	Status TeamStatus `json:"status,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TeamList is a list of teams.
type TeamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Team `json:"items"`
}

// TeamSpec is what an admin sets of a team.
type TeamSpec struct {
	// DisplayName is the name shown to people.
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// Description says what the team is for.
	// +optional
	Description string `json:"description,omitempty"`
	// Users are the team's members (users of the user store). Each user's record holds its
	// teams; this list is read from them, and writing it changes them.
	// +optional
	// +listType=atomic
	Users []string `json:"users,omitempty"`
	// Groups are groups that belong to the team, as Loft keeps them. The edge does not add them
	// to the members' requests (keystore/README.md).
	// +optional
	// +listType=atomic
	Groups []string `json:"groups,omitempty"`
}

// TeamStatus is empty: the edge reports nothing about a team.
type TeamStatus struct{}
