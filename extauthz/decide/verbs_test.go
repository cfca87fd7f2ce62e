package decide

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func withHeaders(t testing.TB, method, path string, header map[string]string) attributes.Attributes {
	t.Helper()
	a, err := attributes.FromRequest(method, path, header)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The attack of issue 12: the documented read-only key opened a shell with kubectl 1.30+'s
// WebSocket GET. exec, attach and portforward need create whatever the method; the GET also
// needs get, as in Kubernetes RBAC, and each verb may come from a different rule.
func TestStreamsNeedCreate(t *testing.T) {
	ws := map[string]string{"connection": "Upgrade", "upgrade": "websocket"}
	spdy := map[string]string{"connection": "Upgrade", "upgrade": "SPDY/3.1"}
	readOnly := v1.AccessKeyScopeRule{Verbs: []string{"get", "list", "watch"}}
	createExec := v1.AccessKeyScopeRule{Verbs: []string{"create"}, Resources: []v1.GroupResources{{Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}}}}
	nodeProxy := v1.AccessKeyScopeRule{Verbs: []string{"get"}, Resources: []v1.GroupResources{{Resources: []string{"nodes/proxy"}}}}
	const exec = "/api/v1/namespaces/a/pods/p/exec?command=sh"
	tests := map[string]struct {
		rules          []v1.AccessKeyScopeRule
		method, path   string
		header         map[string]string
		want           bool
		refusedMessage string
	}{
		"read-only, WebSocket exec": {[]v1.AccessKeyScopeRule{readOnly}, "GET", exec, ws, false,
			`access key "k1" is not allowed to create pods/exec "p" in namespace "a" on cluster "demo"`},
		"read-only, GET exec without upgrade": {[]v1.AccessKeyScopeRule{readOnly}, "GET", exec, nil, false, ""},
		"read-only, SPDY exec":                {[]v1.AccessKeyScopeRule{readOnly}, "POST", exec, spdy, false, ""},
		"read-only, WebSocket attach":         {[]v1.AccessKeyScopeRule{readOnly}, "GET", "/api/v1/namespaces/a/pods/p/attach", ws, false, ""},
		"read-only, WebSocket port-forward":   {[]v1.AccessKeyScopeRule{readOnly}, "GET", "/api/v1/namespaces/a/pods/p/portforward?ports=80", ws, false, ""},
		"read-only, logs over a WebSocket":    {[]v1.AccessKeyScopeRule{readOnly}, "GET", "/api/v1/namespaces/a/pods/p/log?follow=true", ws, true, ""},
		"read-only, a pod's proxy":            {[]v1.AccessKeyScopeRule{readOnly}, "GET", "/api/v1/namespaces/a/pods/p/proxy/", ws, true, ""},
		"create on exec, SPDY exec":           {[]v1.AccessKeyScopeRule{createExec}, "POST", exec, spdy, true, ""},
		"create on exec, WebSocket exec needs get too": {[]v1.AccessKeyScopeRule{createExec}, "GET", exec, ws, false,
			`access key "k1" is not allowed to get pods/exec "p" in namespace "a" on cluster "demo"`},
		"read-only and create on exec, WebSocket exec": {[]v1.AccessKeyScopeRule{readOnly, createExec}, "GET", exec, ws, true, ""},
		"get on nodes/proxy, kubelet exec": {[]v1.AccessKeyScopeRule{nodeProxy}, "GET", "/api/v1/nodes/n1/proxy/exec/a/p/c?command=sh", ws, false,
			`access key "k1" is not allowed to create nodes/proxy "n1" on cluster "demo"`},
		"get on nodes/proxy, kubelet pods": {[]v1.AccessKeyScopeRule{nodeProxy}, "GET", "/api/v1/nodes/n1/proxy/pods", nil, true, ""},
		"every verb, WebSocket exec":       {[]v1.AccessKeyScopeRule{{Verbs: []string{"*"}}}, "GET", exec, ws, true, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k := key(scope(v1.AccessKeyScope{Rules: tc.rules}))
			got := Decide(k, demo, withHeaders(t, tc.method, tc.path, tc.header), created, Options{})
			if (got.Outcome == Allow) != tc.want {
				t.Errorf("%s %s: %v (%s), want allowed=%v", tc.method, tc.path, got.Outcome, got.Message, tc.want)
			}
			if tc.refusedMessage != "" && got.Message != tc.refusedMessage {
				t.Errorf("message\n got %s\nwant %s", got.Message, tc.refusedMessage)
			}
		})
	}
}

// A scope's namespaces hold the objects in them, not the Namespace object itself: the CI key
// of docs/scopes.md ("no cluster-scoped objects") must not patch or delete namespace ci, whose
// labels carry its pod security and project. `""` (cluster-scoped) covers it.
func TestNamespaceObjectIsClusterScoped(t *testing.T) {
	demoSpaces := demo
	demoSpaces.Spaces = "team-a=p1"
	inCI := v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Cluster: "demo", Namespaces: []string{"ci"}}}}
	clusterScoped := v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Namespaces: []string{""}}}}
	space := v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "team-a"}}}
	project := v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "*"}}}
	runScopeCases(t, map[string]scopeCase{
		"namespace rule: objects in it":      {inCI, demo, "PATCH", "/api/v1/namespaces/ci/configmaps/c", true},
		"namespace rule: patch the object":   {inCI, demo, "PATCH", "/api/v1/namespaces/ci", false},
		"namespace rule: delete the object":  {inCI, demo, "DELETE", "/api/v1/namespaces/ci", false},
		"namespace rule: get the object":     {inCI, demo, "GET", "/api/v1/namespaces/ci", false},
		"namespace rule: its status":         {inCI, demo, "PUT", "/api/v1/namespaces/ci/status", false},
		"namespace rule: its finalize":       {inCI, demo, "PUT", "/api/v1/namespaces/ci/finalize", false},
		"cluster-scoped rule: the object":    {clusterScoped, demo, "PATCH", "/api/v1/namespaces/ci", true},
		"cluster-scoped rule: objects in it": {clusterScoped, demo, "GET", "/api/v1/namespaces/ci/pods", false},
		"space: its namespace object":        {space, demoSpaces, "PATCH", "/api/v1/namespaces/team-a", false},
		"project: a space's object":          {project, demoSpaces, "DELETE", "/api/v1/namespaces/team-a", false},
		"another group's namespaces":         {inCI, demo, "GET", "/apis/x.io/v1/namespaces/ci/namespaces/n", true},
	})
	got := Decide(key(scope(inCI)), demo, attrs(t, "DELETE", "/api/v1/namespaces/ci"), created, Options{})
	if want := `access key "k1" is not allowed to delete namespaces "ci" on cluster "demo"`; got.Message != want {
		t.Errorf("message\n got %s\nwant %s", got.Message, want)
	}
}

// rbacFactory is Kubernetes' own request parser, for the reference below.
var rbacFactory = &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

// referenceVerbs derives, independently of package attributes, the verbs Kubernetes 1.35+
// RBAC checks for a request (rbac) and the verbs the edge requires (edge: rbac plus create
// where docs/scopes.md says the edge is stricter). ok is false for a request the API server
// cannot authorize (RBAC allows it for no verbs).
func referenceVerbs(method, path string, header map[string]string) (rbac, edge []string, ok bool) {
	u, err := url.ParseRequestURI(path)
	if err != nil || !strings.HasPrefix(path, "/") {
		return nil, nil, false
	}
	info, err := rbacFactory.NewRequestInfo(&http.Request{Method: method, URL: u})
	if err != nil || info.Verb == "" {
		return nil, nil, false
	}
	rbac = []string{info.Verb}
	if !info.IsResourceRequest {
		return rbac, rbac, true
	}
	sub := info.Subresource
	// Kubernetes: exec, attach and portforward of pods are authorized with create as well.
	if info.APIGroup == "" && info.Resource == "pods" && (sub == "exec" || sub == "attach" || sub == "portforward") {
		rbac = append(rbac, "create")
	}
	edge = slices.Clone(rbac)
	if edgeNeedsCreate(info, header) {
		edge = append(edge, "create")
	}
	return rbac, edge, true
}

// edgeNeedsCreate: the rows of docs/scopes.md where the edge is stricter than RBAC.
func edgeNeedsCreate(info *request.RequestInfo, header map[string]string) bool {
	core, sub := info.APIGroup == "", info.Subresource
	if core && info.Resource == "nodes" && (sub == "proxy" || info.Verb == "proxy") {
		var rest []string
		if sub == "proxy" && len(info.Parts) > 3 {
			rest = info.Parts[3:]
		} else if sub == "" && len(info.Parts) > 2 {
			rest = info.Parts[2:]
		}
		var stack []string // the kubelet path, dot segments resolved
		for _, s := range rest {
			switch s {
			case "", ".":
			case "..":
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
			default:
				stack = append(stack, s)
			}
		}
		return len(stack) > 0 && slices.Contains([]string{"exec", "run", "attach", "portforward", "cri"}, strings.ToLower(stack[0]))
	}
	if core && sub == "proxy" && (info.Resource == "pods" || info.Resource == "services" || info.Resource == "nodes") {
		return false
	}
	switch strings.ToLower(sub) {
	case "exec", "attach", "portforward":
		return true
	case "":
		return false
	}
	upgraded := false // an Upgrade header, or an upgrade token in Connection
	for name, v := range header {
		n := strings.ToLower(name)
		tokens := strings.Split(strings.ToLower(v), ",")
		upgraded = upgraded || (n == "upgrade" && strings.TrimSpace(v) != "") ||
			(n == "connection" && slices.ContainsFunc(tokens, func(s string) bool { return strings.TrimSpace(s) == "upgrade" }))
	}
	return upgraded && !(core && info.Resource == "pods" && sub == "log")
}

// FuzzVerbs: for any method, path and upgrade headers, a request allowed for a rule with verbs
// V is one Kubernetes RBAC would allow with verbs V (every verb RBAC checks is in V), and the
// edge requires exactly the verbs of the reference table: never fewer (a hole), never others.
func FuzzVerbs(f *testing.F) {
	f.Add("GET", "/api/v1/namespaces/a/pods/p/exec?command=sh", "websocket", "Upgrade", "get,list,watch")
	f.Add("POST", "/api/v1/namespaces/a/pods/p/attach", "SPDY/3.1", "Upgrade", "create")
	f.Add("GET", "/api/v1/nodes/n/proxy/portForward/a/p", "", "", "get")
	f.Add("GET", "/api/v1/nodes/n/proxy/x/../exec/a/p/c", "", "", "get,create")
	f.Add("GET", "/apis/k.io/v1/namespaces/a/vms/v/console", "", "keep-alive, upgrade", "get")
	f.Add("GET", "/api/v1/namespaces/a/services/s/proxy/ws", "websocket", "Upgrade", "get")
	f.Add("DELETE", "/api/v1/namespaces/a", "", "", "*")
	f.Add("OPTIONS", "/api/v1/pods", "", "", "*")
	f.Fuzz(func(t *testing.T, method, path, upgrade, connection, verbs string) {
		header := map[string]string{"upgrade": upgrade, "connection": connection}
		v := strings.Split(verbs, ",")
		granted := func(verb string) bool { return slices.Contains(v, verb) || slices.Contains(v, "*") }
		k := key(scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: v}}}))
		a, err := attributes.FromRequest(method, path, header)
		allowed := Decide(k, demo, a, created, Options{}).Outcome == Allow
		rbac, edge, ok := referenceVerbs(method, path, header)
		if err != nil || !ok {
			if allowed {
				t.Errorf("%s %q (unreadable: %v) allowed", method, path, err)
			}
			return
		}
		if allowed && !allGranted(rbac, granted) {
			t.Errorf("%s %q upgrade %q connection %q allowed with verbs %v; RBAC needs %v", method, path, upgrade, connection, v, rbac)
		}
		if allowed != allGranted(edge, granted) {
			t.Errorf("%s %q upgrade %q connection %q with verbs %v: allowed=%v; the reference table needs %v", method, path, upgrade, connection, v, allowed, edge)
		}
	})
}

func allGranted(verbs []string, granted func(string) bool) bool {
	for _, v := range verbs {
		if !granted(v) {
			return false
		}
	}
	return true
}
