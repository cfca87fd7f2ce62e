// Package registry is the storage of the management API (k8s.io/apiserver rest.Storage) for
// OwnedAccessKeys and Selves over keystore/store, and Users and Teams over keystore/users and
// keystore/teams. Who may see and change which object is decided here, from the identity the
// edge passes as front-proxy headers.
package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// TeamUserPrefix starts the user name of requests made with a team's key (loft:team:<team>).
const TeamUserPrefix = "loft:team:"

// AccessKeyExtra is the user-info extra that names the access key of the request
// (Impersonate-Extra-Loft-Access-Key / X-Remote-Extra-Loft-Access-Key).
const AccessKeyExtra = "loft-access-key"

// Caller is who makes a request, as far as ownership goes.
type Caller struct {
	// User is the caller's user name; empty for a team's key.
	User string
	// Team is the team of a team's key; empty for a user's key.
	Team string
	// Teams are the teams User belongs to.
	Teams []string
	// Groups are the groups the request carries.
	Groups []string
	// Admin callers see and manage every key.
	Admin bool
	// Key is the name of the access key the request was made with, if known.
	Key string
}

// TeamsFunc returns the teams a user belongs to (nil when the user is unknown).
type TeamsFunc func(ctx context.Context, user string) ([]string, error)

// callerFrom reads the caller from the request context.
func callerFrom(ctx context.Context, adminGroup string, teams TeamsFunc) (Caller, error) {
	u, ok := genericapirequest.UserFrom(ctx)
	if !ok || u.GetName() == "" {
		return Caller{}, fmt.Errorf("no user in the request")
	}
	c := Caller{Groups: u.GetGroups()}
	if team, ok := strings.CutPrefix(u.GetName(), TeamUserPrefix); ok {
		c.Team = team
	} else {
		c.User = u.GetName()
	}
	c.Admin = adminGroup != "" && slices.Contains(c.Groups, adminGroup)
	// The apiserver's own loopback client is privileged.
	if slices.Contains(c.Groups, user.SystemPrivilegedGroup) {
		c.Admin = true
	}
	if keys := u.GetExtra()[AccessKeyExtra]; len(keys) == 1 {
		c.Key = keys[0]
	}
	if c.User != "" && teams != nil {
		t, err := teams(ctx, c.User)
		if err != nil {
			// The store did not answer: the caller is who they are, and should retry, not log in
			// again (a 401 would say the key is bad).
			return Caller{}, apierrors.NewServiceUnavailable(fmt.Sprintf("the teams of %s: %v", c.User, err))
		}
		c.Teams = t
	}
	return c, nil
}

// callerError is the API error of a callerFrom error: 401 for a request without a user, the
// error itself when it is one already (503 when the caller's teams could not be read).
func callerError(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return apierrors.NewUnauthorized(err.Error())
}

// Owns reports whether c may see and manage k: admins every key, others the keys of their user
// and of their teams.
func (c Caller) Owns(k *v1.OwnedAccessKey) bool {
	switch {
	case c.Admin:
		return true
	case k.Spec.User != "":
		return c.User != "" && k.Spec.User == c.User
	case k.Spec.Team != "":
		return k.Spec.Team == c.Team || slices.Contains(c.Teams, k.Spec.Team)
	}
	return false
}

// MayHold returns why c may not create (or change a key into) k, or "" when it may: a
// non-admin cannot give a key to another user or a team it is not in, nor groups its own
// request does not carry.
func (c Caller) MayHold(k *v1.OwnedAccessKey) string {
	if c.Admin {
		return ""
	}
	if !c.Owns(k) {
		switch {
		case k.Spec.User != "":
			return fmt.Sprintf("only admins may manage access keys of another user (%q)", k.Spec.User)
		default:
			return fmt.Sprintf("only admins and members of team %q may manage its access keys", k.Spec.Team)
		}
	}
	for _, g := range k.Spec.Groups {
		if !slices.Contains(c.Groups, g) {
			return fmt.Sprintf("spec.groups: only admins may give a key group %q, which this request does not carry", g)
		}
	}
	return ""
}
