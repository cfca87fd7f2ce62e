package decide

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// documentedScopes reads the YAML blocks of one "### " example of docs/scopes.md, so that the
// page's examples are the scopes under test and cannot drift from what the tests prove.
func documentedScopes(t *testing.T, heading string) []v1.AccessKeyScope {
	t.Helper()
	page, err := os.ReadFile("../../docs/scopes.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(page), "\n### "+heading+"\n")
	if !ok {
		t.Fatalf("docs/scopes.md has no example %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n### ")
	section, _, _ = strings.Cut(section, "\n## ")
	var scopes []v1.AccessKeyScope
	for {
		var block string
		if _, section, ok = strings.Cut(section, "```yaml\n"); !ok {
			break
		}
		block, section, _ = strings.Cut(section, "```")
		var s v1.AccessKeyScope
		if err := yaml.UnmarshalStrict([]byte(block), &s); err != nil {
			t.Fatalf("example %q: the scope does not parse: %v\n%s", heading, err, block)
		}
		scopes = append(scopes, s)
	}
	if len(scopes) == 0 {
		t.Fatalf("example %q has no yaml block", heading)
	}
	return scopes
}

// exampleClaim is one request an example's sentence speaks of, and whether it passes.
type exampleClaim struct {
	ref          edgepath.Ref
	method, path string
	upgrade      string // the Upgrade header: "websocket", "SPDY/3.1" or none
	want         bool
}

func checkClaims(t *testing.T, s v1.AccessKeyScope, claims map[string]exampleClaim) {
	t.Helper()
	for name, c := range claims {
		t.Run(name, func(t *testing.T) {
			var header map[string]string
			if c.upgrade != "" {
				header = map[string]string{"connection": "Upgrade", "upgrade": c.upgrade}
			}
			// An unreadable request's error is dropped, as the server drops it: its attributes
			// are unparsed, and the claim says whether that passes.
			a, _ := attributes.FromRequest(c.method, c.path, header)
			got := Decide(key(scope(s)), c.ref, a, created, Options{})
			if (got.Outcome == Allow) != c.want {
				t.Errorf("%s %s (%s) on %s: %v (%s), want allowed=%v", c.method, c.path, c.upgrade, c.ref, got.Outcome, got.Message, c.want)
			}
		})
	}
}

var demoWithSpace = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=demo-project"}

// "Everything in namespace ci of cluster demo, nothing else (no other namespace, no
// cluster-scoped objects: not even the Namespace object ci itself …). Discovery … too."
func TestExampleCIKey(t *testing.T) {
	s := documentedScopes(t, "A CI key for one namespace of one cluster")[0]
	checkClaims(t, s, map[string]exampleClaim{
		"pods in ci":                {demo, "GET", "/api/v1/namespaces/ci/pods", "", true},
		"a deployment in ci":        {demo, "POST", "/apis/apps/v1/namespaces/ci/deployments", "", true},
		"deleting a secret in ci":   {demo, "DELETE", "/api/v1/namespaces/ci/secrets/s", "", true},
		"exec in ci":                {demo, "GET", "/api/v1/namespaces/ci/pods/p/exec?command=sh", "websocket", true},
		"discovery":                 {demo, "GET", "/apis/apps/v1", "", true},
		"version":                   {demo, "GET", "/version", "", true},
		"another namespace":         {demo, "GET", "/api/v1/namespaces/default/pods", "", false},
		"every namespace":           {demo, "GET", "/api/v1/pods", "", false},
		"nodes":                     {demo, "GET", "/api/v1/nodes", "", false},
		"the namespace list":        {demo, "GET", "/api/v1/namespaces", "", false},
		"patch the namespace ci":    {demo, "PATCH", "/api/v1/namespaces/ci", "", false},
		"delete the namespace ci":   {demo, "DELETE", "/api/v1/namespaces/ci", "", false},
		"get the namespace ci":      {demo, "GET", "/api/v1/namespaces/ci", "", false},
		"finalize the namespace ci": {demo, "PUT", "/api/v1/namespaces/ci/finalize", "", false},
		"a cluster role":            {demo, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "", false},
		"healthz":                   {demo, "GET", "/healthz", "", false},
		"discovery writes":          {demo, "POST", "/apis", "", false},
		"ci on another cluster":     {staging, "GET", "/api/v1/namespaces/ci/pods", "", false},
		"a virtual cluster of demo": {vc1, "GET", "/api/v1/namespaces/ci/pods", "", true}, // `cluster` covers demo's virtual clusters
		"management":                {edgepath.Ref{Kind: edgepath.KindManagement}, "GET", "/api", "", false},
	})
}

// "Reads everywhere the owner can read, and writes nothing through the Kubernetes API … no
// kubectl exec, attach, port-forward or kubelet run … It does pass GETs through the proxy
// subresources."
func TestExampleReadOnlyKey(t *testing.T) {
	s := documentedScopes(t, "A read-only key")[0]
	const pod = "/api/v1/namespaces/a/pods/p"
	const node = "/api/v1/nodes/n1/proxy"
	checkClaims(t, s, map[string]exampleClaim{
		"get":                    {demo, "GET", pod, "", true},
		"list":                   {staging, "GET", "/api/v1/pods", "", true},
		"watch":                  {vc1, "GET", "/api/v1/pods?watch=1", "", true},
		"logs":                   {demo, "GET", pod + "/log?follow=1", "", true},
		"management reads":       {edgepath.Ref{Kind: edgepath.KindManagement}, "GET", "/apis/management.loft.sh/v1/clusters", "", true},
		"a pod's proxy":          {demo, "GET", pod + "/proxy/", "", true},
		"a service's proxy":      {demo, "GET", "/api/v1/namespaces/a/services/s/proxy/ws", "websocket", true},
		"the kubelet's pods":     {demo, "GET", node + "/pods", "", true},
		"create":                 {demo, "POST", "/api/v1/namespaces/a/configmaps", "", false},
		"update":                 {demo, "PUT", pod, "", false},
		"patch":                  {demo, "PATCH", pod, "", false},
		"delete":                 {demo, "DELETE", pod, "", false},
		"deletecollection":       {demo, "DELETE", "/api/v1/namespaces/a/pods", "", false},
		"scale":                  {demo, "PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale", "", false},
		"exec, WebSocket":        {demo, "GET", pod + "/exec?command=sh", "websocket", false},
		"exec, SPDY":             {demo, "POST", pod + "/exec?command=sh", "SPDY/3.1", false},
		"exec, plain GET":        {demo, "GET", pod + "/exec?command=sh", "", false},
		"attach, WebSocket":      {demo, "GET", pod + "/attach", "websocket", false},
		"port-forward, WS":       {demo, "GET", pod + "/portforward?ports=80", "websocket", false},
		"port-forward, SPDY":     {demo, "POST", pod + "/portforward", "SPDY/3.1", false},
		"kubelet exec":           {demo, "GET", node + "/exec/a/p/c?command=sh", "websocket", false},
		"kubelet run":            {demo, "POST", node + "/run/a/p/c?cmd=id", "", false},
		"kubelet attach":         {demo, "GET", node + "/attach/a/p/c", "", false},
		"kubelet port-forward":   {demo, "GET", node + "/portForward/a/p", "websocket", false},
		"a VM console":           {demo, "GET", "/apis/subresources.kubevirt.io/v1/namespaces/a/virtualmachineinstances/vm/console", "websocket", false},
		"non-resource writes":    {demo, "POST", "/api", "", false},
		"management writes":      {edgepath.Ref{Kind: edgepath.KindManagement}, "POST", "/apis/management.loft.sh/v1/ownedaccesskeys", "", false},
		"an unknown method":      {demo, "OPTIONS", "/api/v1/namespaces/a/pods", "", false},
		"a namespace's deletion": {demo, "DELETE", "/api/v1/namespaces/a", "", false},
	})
}

// "It reaches /kubernetes/virtualcluster/demo/vcluster-demo/vc1/ and is refused everywhere
// else, including the host cluster demo."
func TestExampleVirtualClusterKey(t *testing.T) {
	s := documentedScopes(t, "A key for one virtual cluster")[0]
	vc := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1", Project: "demo-project"}
	other := vc
	other.VirtualCluster = "vc2"
	checkClaims(t, s, map[string]exampleClaim{
		"the virtual cluster":   {vc, "DELETE", "/api/v1/namespaces/a/pods/p", "", true},
		"its exec":              {vc, "GET", "/api/v1/namespaces/a/pods/p/exec", "websocket", true},
		"the host cluster":      {demoWithSpace, "GET", "/api", "", false},
		"another cluster":       {staging, "GET", "/api", "", false},
		"another vcluster":      {other, "GET", "/api", "", false},
		"the host's grafana":    {grafana, "GET", "/api/health", "", false},
		"the management API":    {edgepath.Ref{Kind: edgepath.KindManagement}, "GET", "/api", "", false},
		"its host's namespaces": {demoWithSpace, "GET", "/api/v1/namespaces/vcluster-demo/pods", "", false},
	})
}

// `space: team-a` reaches that space; `"*"`: every space of the project. `project:
// demo-project` reaches its spaces and its virtual clusters.
func TestExampleSpaceAndProjectKeys(t *testing.T) {
	scopes := documentedScopes(t, "A key for one space, or a whole project")
	if len(scopes) != 2 {
		t.Fatalf("the example has %d scopes, want a space and a project", len(scopes))
	}
	vc := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1", Project: "demo-project"}
	common := map[string]exampleClaim{
		"the space":                  {demoWithSpace, "POST", "/api/v1/namespaces/team-a/configmaps", "", true},
		"discovery where it has one": {demoWithSpace, "GET", "/apis", "", true},
		"another namespace":          {demoWithSpace, "GET", "/api/v1/namespaces/default/pods", "", false},
		"cluster-scoped":             {demoWithSpace, "GET", "/api/v1/nodes", "", false},
		"the space's Namespace":      {demoWithSpace, "PATCH", "/api/v1/namespaces/team-a", "", false},
		"a cluster without it":       {staging, "GET", "/api/v1/namespaces/team-a/pods", "", false},
	}
	t.Run("space", func(t *testing.T) {
		claims := map[string]exampleClaim{"the project's virtual cluster": {vc, "GET", "/api", "", false}}
		for k, v := range common {
			claims[k] = v
		}
		checkClaims(t, scopes[0], claims)
	})
	t.Run("project", func(t *testing.T) {
		claims := map[string]exampleClaim{"the project's virtual cluster": {vc, "GET", "/api", "", true}}
		for k, v := range common {
			claims[k] = v
		}
		checkClaims(t, scopes[1], claims)
	})
}
