// Package attributes derives what a scope rule is matched against from a request, exactly as
// the Kubernetes API server does: k8s.io/apiserver's RequestInfoFactory, applied to the path
// after the edge's prefix, plus the second `create` check that Kubernetes 1.35+ makes for
// requests that open a stream into a workload (streams.go).
package attributes

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Attributes of a request, as Kubernetes authorisation sees them. The zero value is a request
// that could not be read: only FromRequest makes parsed attributes, so a hand-built or missing
// value can never pass a scope by accident (see Parsed).
type Attributes struct {
	// ResourceRequest is false for non-resource paths such as /version or /healthz.
	ResourceRequest bool
	// Verb is get, list, watch, create, update, patch, delete, deletecollection (resource
	// requests) or the lower-case HTTP method (non-resource requests): RequestInfoFactory's verb.
	Verb string
	// AlsoVerb is a second verb the request needs besides Verb, or "". It is "create" for a
	// request that opens a stream into a workload (pods/exec, pods/attach, pods/portforward,
	// kubelet's exec, run, attach and portForward through nodes/proxy, any upgraded
	// subresource other than a proxy), whatever its method: Kubernetes 1.35+ authorizes exec,
	// attach and portforward twice, with the method's verb and with create.
	AlsoVerb    string
	APIGroup    string
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// Path is the path the upstream sees, without the query.
	Path string
	// Upgrade is true when the client asked to upgrade the connection (WebSocket, SPDY).
	Upgrade bool
	// parsed is set by FromRequest only.
	parsed bool
}

var factory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// FromRequest returns the attributes of a request with method, pathAndQuery (the upstream path,
// after the edge's prefix, with its query string) and header (the request's headers; names in
// any case, as Envoy's CheckRequest carries them in lower case). Only Upgrade and Connection
// are read. A request whose attributes cannot be read is an error, and so is a resource request
// whose method gives no verb (CONNECT, OPTIONS, …): empty attributes must never match a rule.
func FromRequest(method, pathAndQuery string, header map[string]string) (Attributes, error) {
	if !strings.HasPrefix(pathAndQuery, "/") {
		return Attributes{}, fmt.Errorf("request path %q does not start with /", pathAndQuery)
	}
	u, err := url.ParseRequestURI(pathAndQuery)
	if err != nil {
		return Attributes{}, fmt.Errorf("request path %q: %w", pathAndQuery, err)
	}
	info, err := factory.NewRequestInfo(&http.Request{Method: method, URL: u})
	if err != nil {
		return Attributes{}, fmt.Errorf("request %s %s: %w", method, pathAndQuery, err)
	}
	if info.Verb == "" || (info.IsResourceRequest && info.Resource == "") {
		return Attributes{}, fmt.Errorf("request %s %s: Kubernetes gives it no verb or resource", method, pathAndQuery)
	}
	a := Attributes{
		ResourceRequest: info.IsResourceRequest,
		Verb:            info.Verb,
		APIGroup:        info.APIGroup,
		APIVersion:      info.APIVersion,
		Namespace:       info.Namespace,
		Resource:        info.Resource,
		Subresource:     info.Subresource,
		Name:            info.Name,
		Path:            u.Path,
		Upgrade:         isUpgrade(header),
		parsed:          true,
	}
	if a.ResourceRequest && a.Verb != "create" && opensStream(a, info.Parts) {
		a.AlsoVerb = "create"
	}
	return a, nil
}

// Parsed reports whether the attributes were read from a request. A scoped key's request whose
// attributes were not is refused.
func (a Attributes) Parsed() bool { return a.parsed }

// Checks are the authorisation checks the request needs, each with one verb: all must pass, as
// Kubernetes authorizes exec with the method's verb and again with create. None when the
// attributes were not parsed.
func (a Attributes) Checks() []Attributes {
	if !a.parsed {
		return nil
	}
	one := a
	one.AlsoVerb = ""
	checks := []Attributes{one}
	if a.AlsoVerb != "" && a.AlsoVerb != a.Verb {
		also := one
		also.Verb = a.AlsoVerb
		checks = append(checks, also)
	}
	return checks
}

// isUpgrade: an Upgrade header, or an "upgrade" token in Connection. Either alone counts, so a
// client cannot hide an upgrade by leaving one out.
func isUpgrade(header map[string]string) bool {
	for name, value := range header {
		switch {
		case strings.EqualFold(name, "upgrade") && strings.TrimSpace(value) != "":
			return true
		case strings.EqualFold(name, "connection"):
			for _, token := range strings.Split(value, ",") {
				if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
					return true
				}
			}
		}
	}
	return false
}
