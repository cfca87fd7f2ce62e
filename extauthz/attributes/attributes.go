// Package attributes derives what a scope rule is matched against from a request, exactly as
// the Kubernetes API server does: k8s.io/apiserver's RequestInfoFactory, applied to the path
// after the edge's prefix.
package attributes

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Attributes of a request, as Kubernetes authorisation sees them.
type Attributes struct {
	// ResourceRequest is false for non-resource paths such as /version or /healthz.
	ResourceRequest bool
	// Verb is get, list, watch, create, update, patch, delete, deletecollection (resource
	// requests) or the lower-case HTTP method (non-resource requests).
	Verb        string
	APIGroup    string
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// Path is the path the upstream sees, without the query.
	Path string
}

var factory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// FromRequest returns the attributes of a request with method and pathAndQuery (the upstream
// path, after the edge's prefix, with its query string).
func FromRequest(method, pathAndQuery string) (Attributes, error) {
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
	return Attributes{
		ResourceRequest: info.IsResourceRequest,
		Verb:            info.Verb,
		APIGroup:        info.APIGroup,
		APIVersion:      info.APIVersion,
		Namespace:       info.Namespace,
		Resource:        info.Resource,
		Subresource:     info.Subresource,
		Name:            info.Name,
		Path:            u.Path,
	}, nil
}
