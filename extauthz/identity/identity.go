// Package identity computes the headers that tell an upstream who a request is from: the
// owner of the access key, by impersonation for Kubernetes, front-proxy headers for the
// management API, and the auth-proxy headers for Grafana (user, optionally groups); and which
// client-sent headers could claim an identity and must go.
package identity

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Header is one header value; a name may repeat (one Impersonate-Group per group).
type Header struct {
	Name, Value string
}

// Options configure the headers.
type Options struct {
	// GrafanaUserHeader is the header Grafana's auth proxy reads the user from
	// ([auth.proxy] header_name).
	GrafanaUserHeader string
	// GrafanaGroupsHeader, if set, carries the key's groups to Grafana, as a JSON list (which
	// Grafana's auth proxy reads as is, names with commas or spaces included); Grafana must map
	// it ([auth.proxy] headers = Groups:<name>).
	GrafanaGroupsHeader string
	// GrafanaAuthProxyHeaders are every header Grafana's auth proxy may read
	// ([auth.proxy] headers: Name, Email, Login, Role, Groups): a client's are always removed,
	// so that no one can claim a role, a group or another login. Nil means
	// DefaultGrafanaAuthProxyHeaders; the user and groups headers are removed in any case.
	GrafanaAuthProxyHeaders []string
}

// DefaultGrafanaUserHeader is Grafana's default auth-proxy header.
const DefaultGrafanaUserHeader = "X-WEBAUTH-USER"

// DefaultGrafanaAuthProxyHeaders are the header names Grafana's documentation gives for its
// auth proxy (edgepath.DefaultGrafanaAuthProxyHeaders, which xds's Envoy strips from every
// request itself).
var DefaultGrafanaAuthProxyHeaders = edgepath.DefaultGrafanaAuthProxyHeaders

func (o Options) grafanaUser() string {
	if o.GrafanaUserHeader == "" {
		return DefaultGrafanaUserHeader
	}
	return o.GrafanaUserHeader
}

// GrafanaHeaders lists, in lower case and once each, every header Grafana's auth proxy may
// read: the user and groups headers and GrafanaAuthProxyHeaders.
func (o Options) GrafanaHeaders() []string {
	list := o.GrafanaAuthProxyHeaders
	if list == nil {
		list = DefaultGrafanaAuthProxyHeaders
	}
	all := append([]string{o.grafanaUser(), o.GrafanaGroupsHeader}, list...)
	var out []string
	for _, h := range all {
		if h = strings.ToLower(h); h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// isGrafanaHeader reports whether name (any letter case) is a header Grafana's auth proxy may
// read.
func (o Options) isGrafanaHeader(name string) bool {
	if strings.EqualFold(name, o.grafanaUser()) || (o.GrafanaGroupsHeader != "" && strings.EqualFold(name, o.GrafanaGroupsHeader)) {
		return true
	}
	list := o.GrafanaAuthProxyHeaders
	if list == nil {
		list = DefaultGrafanaAuthProxyHeaders
	}
	return slices.ContainsFunc(list, func(h string) bool { return strings.EqualFold(name, h) })
}

// Headers returns the identity headers for a request with key k, whose user has userGroups in
// the user store, to a target of kind kind.
func Headers(k *v1.OwnedAccessKey, userGroups []string, kind edgepath.Kind, opts Options) []Header {
	var user, group, extra string
	switch {
	case kind.Kubernetes():
		user, group, extra = "Impersonate-User", "Impersonate-Group", "Impersonate-Extra-Loft-Access-Key"
	case kind == edgepath.KindManagement:
		user, group, extra = "X-Remote-User", "X-Remote-Group", "X-Remote-Extra-Loft-Access-Key"
	case kind == edgepath.KindGrafana:
		return grafanaHeaders(k, userGroups, opts)
	default:
		return nil
	}
	groups := accesskey.Groups(k, userGroups)
	hs := make([]Header, 0, len(groups)+2)
	hs = append(hs, Header{user, accesskey.User(k)})
	for _, g := range groups {
		hs = append(hs, Header{group, g})
	}
	return append(hs, Header{extra, k.Name})
}

// grafanaHeaders are the auth-proxy headers the edge owns: the key's user, and its groups if
// a groups header is configured.
func grafanaHeaders(k *v1.OwnedAccessKey, userGroups []string, opts Options) []Header {
	hs := []Header{{opts.grafanaUser(), accesskey.User(k)}}
	if opts.GrafanaGroupsHeader != "" {
		// A list of strings always marshals.
		groups, _ := json.Marshal(accesskey.Groups(k, userGroups))
		hs = append(hs, Header{opts.GrafanaGroupsHeader, string(groups)})
	}
	return hs
}

// IsIdentityHeader reports whether a client-sent header could claim an identity upstream;
// such headers are always removed before forwarding. Envoy hands header names to ext_authz in
// lower case, but the comparison ignores case anyway, since upstreams do.
func IsIdentityHeader(name string, opts Options) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "impersonate-") || strings.HasPrefix(n, "x-remote-") || opts.isGrafanaHeader(n)
}
