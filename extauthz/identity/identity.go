// Package identity computes the headers that tell an upstream who a request is from: the
// owner of the access key, by impersonation for Kubernetes, front-proxy headers for the
// management API, and the auth-proxy header for Grafana.
package identity

import (
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
	// GrafanaUserHeader is the header Grafana's auth proxy reads the user from.
	GrafanaUserHeader string
}

// DefaultGrafanaUserHeader is Grafana's default auth-proxy header.
const DefaultGrafanaUserHeader = "X-WEBAUTH-USER"

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
		name := opts.GrafanaUserHeader
		if name == "" {
			name = DefaultGrafanaUserHeader
		}
		return []Header{{name, accesskey.User(k)}}
	default:
		return nil
	}
	hs := []Header{{user, accesskey.User(k)}}
	for _, g := range accesskey.Groups(k, userGroups) {
		hs = append(hs, Header{group, g})
	}
	return append(hs, Header{extra, k.Name})
}

// IsIdentityHeader reports whether a client-sent header could claim an identity upstream;
// such headers are always removed before forwarding.
func IsIdentityHeader(name string, opts Options) bool {
	n := strings.ToLower(name)
	grafana := opts.GrafanaUserHeader
	if grafana == "" {
		grafana = DefaultGrafanaUserHeader
	}
	return strings.HasPrefix(n, "impersonate-") || strings.HasPrefix(n, "x-remote-") || n == strings.ToLower(grafana)
}
