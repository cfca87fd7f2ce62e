package attributes

import (
	"strings"
	"testing"
)

func TestFromRequest(t *testing.T) {
	tests := map[string]struct {
		method, path string
		want         Attributes
	}{
		"list pods": {"GET", "/api/v1/namespaces/ns1/pods",
			Attributes{ResourceRequest: true, Verb: "list", APIVersion: "v1", Namespace: "ns1", Resource: "pods", Path: "/api/v1/namespaces/ns1/pods"}},
		"watch by query": {"GET", "/api/v1/namespaces/ns1/pods?watch=true",
			Attributes{ResourceRequest: true, Verb: "watch", APIVersion: "v1", Namespace: "ns1", Resource: "pods", Path: "/api/v1/namespaces/ns1/pods"}},
		"get one pod": {"GET", "/api/v1/namespaces/ns1/pods/web",
			Attributes{ResourceRequest: true, Verb: "get", APIVersion: "v1", Namespace: "ns1", Resource: "pods", Name: "web", Path: "/api/v1/namespaces/ns1/pods/web"}},
		"exec subresource": {"POST", "/api/v1/namespaces/ns1/pods/web/exec?command=ls",
			Attributes{ResourceRequest: true, Verb: "create", APIVersion: "v1", Namespace: "ns1", Resource: "pods", Subresource: "exec", Name: "web", Path: "/api/v1/namespaces/ns1/pods/web/exec"}},
		"cluster-scoped list": {"GET", "/api/v1/namespaces",
			Attributes{ResourceRequest: true, Verb: "list", APIVersion: "v1", Resource: "namespaces", Path: "/api/v1/namespaces"}},
		"a namespace object": {"GET", "/api/v1/namespaces/ns1",
			Attributes{ResourceRequest: true, Verb: "get", APIVersion: "v1", Namespace: "ns1", Resource: "namespaces", Name: "ns1", Path: "/api/v1/namespaces/ns1"}},
		"grouped create": {"POST", "/apis/apps/v1/namespaces/ns1/deployments",
			Attributes{ResourceRequest: true, Verb: "create", APIGroup: "apps", APIVersion: "v1", Namespace: "ns1", Resource: "deployments", Path: "/apis/apps/v1/namespaces/ns1/deployments"}},
		"delete collection": {"DELETE", "/apis/apps/v1/namespaces/ns1/deployments",
			Attributes{ResourceRequest: true, Verb: "deletecollection", APIGroup: "apps", APIVersion: "v1", Namespace: "ns1", Resource: "deployments", Path: "/apis/apps/v1/namespaces/ns1/deployments"}},
		"patch": {"PATCH", "/apis/apps/v1/namespaces/ns1/deployments/web",
			Attributes{ResourceRequest: true, Verb: "patch", APIGroup: "apps", APIVersion: "v1", Namespace: "ns1", Resource: "deployments", Name: "web", Path: "/apis/apps/v1/namespaces/ns1/deployments/web"}},
		"version": {"GET", "/version",
			Attributes{Verb: "get", Path: "/version"}},
		"discovery root": {"GET", "/apis",
			Attributes{Verb: "get", Path: "/apis"}},
		"group discovery": {"GET", "/apis/apps",
			Attributes{Verb: "get", Path: "/apis/apps"}},
		"non-resource post": {"POST", "/healthz",
			Attributes{Verb: "post", Path: "/healthz"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := FromRequest(tc.method, tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.parsed = true
			if got != tc.want {
				t.Errorf("FromRequest(%s %s)\n got %+v\nwant %+v", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

// Requests whose attributes cannot be read are errors, never empty attributes that a rule
// could match: bad paths, and resource requests whose method Kubernetes gives no verb.
func TestFromRequestRefusesUnreadableRequests(t *testing.T) {
	for _, r := range []struct{ method, path string }{
		{"GET", ""}, {"GET", "api/v1/pods"}, {"GET", "/%zz"}, {"GET", "/api/v1/watch"},
		{"CONNECT", "/api/v1/namespaces/a/pods/p/exec"}, {"OPTIONS", "/api/v1/namespaces/a/pods"}, {"", "/api/v1/pods"}, {"", "/version"},
	} {
		if a, err := FromRequest(r.method, r.path, nil); err == nil {
			t.Errorf("FromRequest(%s %q) = %+v; want an error", r.method, r.path, a)
		}
	}
	if (Attributes{}).Parsed() || len((Attributes{}).Checks()) != 0 {
		t.Error("zero attributes count as parsed")
	}
}

// FuzzFromRequest: any path either is refused or gives attributes whose namespace and names
// never contain a slash (the parser splits on them), whose verb, resource (of a resource
// request) and path are never empty, and a standard HTTP method always gives a known verb.
// (Other methods give a resource request an empty verb in the API server; FromRequest refuses
// them, so they fail closed.)
func FuzzFromRequest(f *testing.F) {
	for _, s := range []string{"/api/v1/namespaces/a/pods", "/apis/apps/v1/deployments?watch=1", "/version", "/api", "//api/v1", "/api/v1/namespaces/a/pods/b/exec"} {
		f.Add("GET", s)
	}
	f.Add("DELETE", "/apis/x/v1/namespaces/n/r")
	verbs := map[string]bool{"get": true, "list": true, "watch": true, "create": true, "update": true, "patch": true,
		"delete": true, "deletecollection": true, "post": true, "put": true, "head": true, "options": true}
	f.Fuzz(func(t *testing.T, method, path string) {
		a, err := FromRequest(method, path, nil)
		if err != nil {
			return
		}
		if a.Verb == "" || (a.ResourceRequest && a.Resource == "") || a.Path == "" {
			t.Errorf("%s %q parsed to empty attributes %+v", method, path, a)
		}
		standard := map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true}
		if a.ResourceRequest && standard[method] && !verbs[a.Verb] {
			t.Errorf("resource request %s %q has verb %q", method, path, a.Verb)
		}
		for _, v := range []string{a.Namespace, a.Resource, a.Name, a.Subresource} {
			if strings.Contains(v, "/") {
				t.Errorf("%s %q: attribute %q contains a slash", method, path, v)
			}
		}
	})
}
