package sso

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/config"
)

// refused is a login or refresh the rules refuse: the message says why, to the user (a 403
// page) and to the log.
type refused struct{ msg string }

func (r *refused) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &refused{fmt.Sprintf(format, args...)} }

// identity is what a login or a refresh makes of the IdP's claims.
type identity struct {
	// Name is the key's spec.user: the connector's prefix and the IdP's name.
	Name string
	// Groups are the key's spec.groups: the IdP's groups less those it may not grant.
	Groups []string
	// Dropped are the IdP's groups the rules dropped, for the log.
	Dropped []string
	ID      v1.AccessKeyIdentity
}

// rules are what mapping needs beyond the connector: the edge's admin group, which no IdP
// grants unless its connector lists it in privilegedGroups.
type rules struct {
	connector  string
	o          *config.OIDCConnector
	adminGroup string
}

// mapClaims turns the IdP's claims (the ID token's, filled in from userinfo) into an identity,
// or refuses it. See the README's "Single sign-on" for the rules.
func (ru rules) mapClaims(c map[string]any) (*identity, error) {
	sub, _ := c["sub"].(string)
	if sub == "" {
		return nil, refuse("the identity provider's token has no subject (sub)")
	}
	raw, err := ru.username(c)
	if err != nil {
		return nil, err
	}
	groups, err := stringList(c, ru.groupsClaim())
	if err != nil {
		return nil, err
	}
	kept, dropped := ru.filterGroups(groups)
	if len(ru.o.AllowedGroups) > 0 && !slices.ContainsFunc(kept, func(g string) bool { return slices.Contains(ru.o.AllowedGroups, g) }) {
		return nil, refuse("user %q is in none of the groups connector %s allows (%s)", raw, ru.connector, strings.Join(ru.o.AllowedGroups, ", "))
	}
	id := &identity{Name: ru.o.UsernamePrefix + raw, Groups: kept, Dropped: dropped}
	id.ID = v1.AccessKeyIdentity{
		UserID: sub, Username: id.Name, Groups: kept, Connector: ru.connector,
	}
	id.ID.PreferredUsername, _ = c["preferred_username"].(string)
	id.ID.Email, _ = c["email"].(string)
	id.ID.EmailVerified = verified(c)
	return id, nil
}

func (ru rules) groupsClaim() string {
	if ru.o.GroupsClaim != "" {
		return ru.o.GroupsClaim
	}
	return config.DefaultGroupsClaim
}

// username is the IdP's name of the user, before the prefix. Without a usernameClaim set, it
// is preferred_username, else a verified email: an unverified address could be anyone's.
func (ru rules) username(c map[string]any) (string, error) {
	claim := ru.o.UsernameClaim
	name, _ := c[claimOr(claim, config.DefaultUsernameClaim)].(string)
	if name == "" && claim == "" {
		if email, _ := c["email"].(string); email != "" && verified(c) {
			name = email
		}
	}
	switch {
	case name == "":
		return "", refuse("the identity provider sent no user name (claim %s)", claimOr(claim, "preferred_username, or a verified email"))
	case !config.ValidUsername(name):
		// ':' above all: with it, a name from one connector could carry another's prefix.
		return "", refuse("user name %q from the identity provider is not usable: letters, digits and . _ - @ + only, at most 200", name)
	}
	return name, nil
}

func claimOr(claim, def string) string {
	if claim == "" {
		return def
	}
	return claim
}

// verified reads email_verified, which some IdPs send as a string.
func verified(c map[string]any) bool {
	switch v := c["email_verified"].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// filterGroups keeps the groups an IdP may grant: never system: or loft: ones (Kubernetes'
// system:masters, the edge's own user and team identities), the edge's admin group and
// keygate: groups only when the connector lists them in privilegedGroups; and no empty,
// untrimmed or repeated ones.
func (ru rules) filterGroups(groups []string) (kept, dropped []string) {
	for _, g := range groups {
		if ru.mayGrant(g) && !slices.Contains(kept, g) {
			kept = append(kept, g)
		} else if !slices.Contains(kept, g) {
			dropped = append(dropped, g)
		}
	}
	return kept, dropped
}

func (ru rules) mayGrant(g string) bool {
	if g == "" || g != strings.TrimSpace(g) || strings.ContainsFunc(g, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	for _, p := range config.ReservedGroupPrefixes {
		if strings.HasPrefix(g, p) {
			return false
		}
	}
	if g == ru.adminGroup || strings.HasPrefix(g, config.PrivilegedGroupPrefix) {
		return slices.Contains(ru.o.PrivilegedGroups, g)
	}
	return true
}

// stringList reads a claim holding a list of strings, or one string; absent is empty.
func stringList(c map[string]any, claim string) ([]string, error) {
	switch v := c[claim].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, refuse("claim %s of the identity provider holds a %T, not a string", claim, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, refuse("claim %s of the identity provider is a %T, not a list of strings", claim, v)
	}
}
