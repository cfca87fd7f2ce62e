package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Auth configures the login endpoints (/auth/ on the edge).
type Auth struct {
	// Connectors are the external identity providers users may log in with.
	Connectors []Connector `json:"connectors,omitempty"`
}

// Connector is one external identity provider.
type Connector struct {
	// ID names the connector in paths (/auth/<id>/login) and in spec.identity.connector.
	ID string `json:"id"`
	// DisplayName is shown on the login page ("Log in with Okta").
	DisplayName string `json:"displayName,omitempty"`
	// OIDC configures an OpenID Connect provider.
	OIDC *OIDCConnector `json:"oidc,omitempty"`
}

// Defaults of an OIDCConnector's optional fields.
const (
	DefaultUsernameClaim   = "preferred_username"
	DefaultGroupsClaim     = "groups"
	DefaultRefreshInterval = 15 * time.Minute
	// MinRefreshInterval keeps a typo ("1s") from hammering the identity provider.
	MinRefreshInterval = 30 * time.Second
)

// DefaultScopes are asked for when a connector names none: openid for the ID token, profile and
// email for the username claims, groups (which most IdPs need to send groups, and the others
// ignore), offline_access for the refresh token that keeps the groups current.
var DefaultScopes = []string{"openid", "profile", "email", "groups", "offline_access"}

// ReservedConnectorIDs are paths of the login endpoints: a connector with one of these IDs would
// hide them (or be hidden).
var ReservedConnectorIDs = []string{"password", "login", "logout", "signout"}

// ReservedGroupPrefixes are groups no identity provider may grant: system:masters is
// Kubernetes' superuser (and keystore's management API's), loft: names the edge's own user and
// team identities. Groups with these prefixes are dropped from every IdP's claims.
var ReservedGroupPrefixes = []string{"system:", "loft:"}

// PrivilegedGroupPrefix marks the edge's own groups (keygate:admins and the like): an IdP's
// claim of one is dropped unless its connector lists it in privilegedGroups.
const PrivilegedGroupPrefix = "keygate:"

// OIDCConnector is an OpenID Connect identity provider.
type OIDCConnector struct {
	// IssuerURL is the IdP's issuer: its discovery document is IssuerURL +
	// /.well-known/openid-configuration, and ID tokens must carry exactly this iss.
	IssuerURL string `json:"issuerURL"`
	ClientID  string `json:"clientId"`
	// ClientSecretFile holds the client secret (a mounted Secret); secrets are never in this
	// file.
	ClientSecretFile string `json:"clientSecretFile,omitempty"`
	// CAFile is the CA (PEM) of the IdP's HTTPS certificate, for a private IdP; empty: the
	// system's CAs.
	CAFile string `json:"caFile,omitempty"`
	// Scopes asked for; empty: DefaultScopes. openid is required; without offline_access most
	// IdPs give no refresh token, and such a login lives only RefreshInterval.
	Scopes []string `json:"scopes,omitempty"`
	// UsernameClaim is the claim the user's name comes from. Empty: preferred_username, and when
	// the token has none, email if email_verified is true.
	UsernameClaim string `json:"usernameClaim,omitempty"`
	// UsernamePrefix is put in front of every name from this IdP ("okta:" makes alice
	// "okta:alice"), so that its users never share a name with another IdP's. It must end with
	// ":"; at most one connector may have none.
	UsernamePrefix string `json:"usernamePrefix,omitempty"`
	// GroupsClaim is the claim holding the user's groups (a list of strings, or one string);
	// empty: groups.
	GroupsClaim string `json:"groupsClaim,omitempty"`
	// AllowedGroups, when set, are the groups of which a user must have at least one to log in;
	// a refresh that finds the user in none of them disables the key.
	AllowedGroups []string `json:"allowedGroups,omitempty"`
	// PrivilegedGroups are groups of the edge (keystore's --admin-group, or keygate:...) that
	// this IdP may grant. Any other such group an IdP claims is dropped; system: and loft:
	// groups are dropped always.
	PrivilegedGroups []string `json:"privilegedGroups,omitempty"`
	// RefreshInterval is the longest a login key keeps the groups it was given before the IdP is
	// asked again (a Go duration); empty: 15m.
	RefreshInterval string `json:"refreshInterval,omitempty"`
}

// Interval is RefreshInterval as a duration (validated by Config.Validate).
func (o *OIDCConnector) Interval() time.Duration {
	if o.RefreshInterval == "" {
		return DefaultRefreshInterval
	}
	d, err := time.ParseDuration(o.RefreshInterval)
	if err != nil {
		return DefaultRefreshInterval
	}
	return d
}

// ScopeList is Scopes, or DefaultScopes when empty.
func (o *OIDCConnector) ScopeList() []string {
	if len(o.Scopes) == 0 {
		return DefaultScopes
	}
	return o.Scopes
}

func (a *Auth) validate() []string {
	var errs []string
	ids := map[string]int{}
	prefixes := map[string]string{}
	for i, c := range a.Connectors {
		where := fmt.Sprintf("auth.connectors[%d]", i)
		if c.ID != "" {
			where = fmt.Sprintf("auth.connectors[%d] (%s)", i, c.ID)
		}
		bad := func(format string, args ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, args...)) }
		errs = append(errs, validateConnectorID(where, c.ID)...)
		if j, dup := ids[c.ID]; dup && c.ID != "" {
			bad("id: %q is also the id of auth.connectors[%d]", c.ID, j)
		}
		ids[c.ID] = i
		if c.OIDC == nil {
			bad("oidc: required (the only kind of connector)")
			continue
		}
		errs = append(errs, c.OIDC.validate(where+": oidc.")...)
		if other, dup := prefixes[c.OIDC.UsernamePrefix]; dup {
			// Two IdPs giving the same names would let one IdP's alice be the other's.
			bad("oidc.usernamePrefix: %q is also the prefix of connector %s; each connector needs its own (at most one may have none)", c.OIDC.UsernamePrefix, other)
		}
		prefixes[c.OIDC.UsernamePrefix] = c.ID
	}
	return errs
}

func validateConnectorID(where, id string) []string {
	switch {
	case id == "":
		return []string{where + ": id: required"}
	case validation.IsDNS1123Label(id) != nil:
		return []string{fmt.Sprintf("%s: id: %q must be a DNS-1123 label (lowercase letters, digits and '-'): it is a path segment and spec.identity.connector", where, id)}
	}
	for _, r := range ReservedConnectorIDs {
		if id == r {
			return []string{fmt.Sprintf("%s: id: %q is reserved (/auth/%s is a path of the login endpoints); reserved: %s", where, id, id, strings.Join(ReservedConnectorIDs, ", "))}
		}
	}
	return nil
}

func (o *OIDCConnector) validate(at string) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, at+fmt.Sprintf(format, args...)) }
	if u, err := url.Parse(o.IssuerURL); o.IssuerURL == "" || err != nil || u.Host == "" || u.Scheme != "https" || u.RawQuery != "" || u.Fragment != "" {
		bad("issuerURL: %q must be an absolute https URL without query or fragment", o.IssuerURL)
	}
	if o.ClientID == "" {
		bad("clientId: required")
	}
	if o.ClientSecretFile == "" {
		bad("clientSecretFile: required (a file holding the client secret; secrets are never in this file)")
	}
	if len(o.Scopes) > 0 && !contains(o.Scopes, "openid") {
		bad("scopes: must include openid (the ID token is what the login checks)")
	}
	if p := o.UsernamePrefix; p != "" && (!strings.HasSuffix(p, ":") || strings.Count(p, ":") != 1 || !validNamePart(strings.TrimSuffix(p, ":"))) {
		bad("usernamePrefix: %q must be letters, digits, '.', '_' or '-' followed by one ':' (such as okta:)", p)
	}
	for _, r := range append(ReservedGroupPrefixes, PrivilegedGroupPrefix) {
		if strings.HasPrefix(o.UsernamePrefix, r) {
			bad("usernamePrefix: %q is reserved for the edge's own identities", o.UsernamePrefix)
		}
	}
	for i, g := range o.PrivilegedGroups {
		for _, r := range ReservedGroupPrefixes {
			if strings.HasPrefix(g, r) {
				bad("privilegedGroups[%d]: %q: no identity provider may grant %s groups", i, g, r)
			}
		}
	}
	if o.RefreshInterval != "" {
		if d, err := time.ParseDuration(o.RefreshInterval); err != nil || d < MinRefreshInterval {
			bad("refreshInterval: %q must be a Go duration of at least %s (such as 15m)", o.RefreshInterval, MinRefreshInterval)
		}
	}
	return errs
}

// validNamePart is what a user name from an IdP (and a prefix before its ':') may be made of:
// letters, digits and . _ - @ +, nothing that a header, a path or a group list would read
// differently.
func validNamePart(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@+", c)
		if !ok {
			return false
		}
	}
	return true
}

// ValidUsername says whether s may be the name of an IdP's user before its connector's prefix
// (see validNamePart); at most 200 characters, so that a prefixed name stays short.
func ValidUsername(s string) bool { return len(s) <= 200 && validNamePart(s) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
