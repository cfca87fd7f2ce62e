package decide

import (
	"testing"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestSpacesAndProjects(t *testing.T) {
	// Cluster demo has spaces team-a and team-b of project p1, and team-c of project p2.
	demoSpaces := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=p1,team-b=p1,team-c=p2"}
	vcOther := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "ns", VirtualCluster: "vc9", Project: "p2"}
	spaceA := v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "team-a"}}}
	allOfP1 := v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "*"}}}
	projectP1 := v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "p1"}}}
	anyProject := v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "*"}}}
	runScopeCases(t, map[string]scopeCase{
		"space: pods in it":                      {spaceA, demoSpaces, "GET", "/api/v1/namespaces/team-a/pods", true},
		"space: writes in it":                    {spaceA, demoSpaces, "POST", "/apis/apps/v1/namespaces/team-a/deployments", true},
		"space: another namespace":               {spaceA, demoSpaces, "GET", "/api/v1/namespaces/team-b/pods", false},
		"space: a namespace that is no space":    {spaceA, demoSpaces, "GET", "/api/v1/namespaces/default/pods", false},
		"space: cluster-scoped resources":        {spaceA, demoSpaces, "GET", "/api/v1/nodes", false},
		"space: all namespaces":                  {spaceA, demoSpaces, "GET", "/api/v1/pods", false},
		"space: discovery where it has a space":  {spaceA, demoSpaces, "GET", "/apis/apps/v1", true},
		"space: openapi where it has a space":    {spaceA, demoSpaces, "GET", "/openapi/v3/api/v1", true},
		"space: discovery elsewhere":             {spaceA, staging, "GET", "/api", false},
		"space: other non-resource paths":        {spaceA, demoSpaces, "GET", "/healthz", false},
		"space: non-resource writes":             {spaceA, demoSpaces, "POST", "/api", false},
		"space: same name in another project":    {v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p2", Space: "team-a"}}}, demoSpaces, "GET", "/api/v1/namespaces/team-a/pods", false},
		"space: cluster without that space":      {spaceA, staging, "GET", "/api/v1/namespaces/team-a/pods", false},
		"space: grafana":                         {spaceA, grafana, "GET", "/api/health", false},
		"space: virtual cluster":                 {spaceA, vc1, "GET", "/api/v1/namespaces/team-a/pods", false},
		"space star: every space of the project": {allOfP1, demoSpaces, "GET", "/api/v1/namespaces/team-b/pods", true},
		"space star: not another project's":      {allOfP1, demoSpaces, "GET", "/api/v1/namespaces/team-c/pods", false},
		"project: its space":                     {projectP1, demoSpaces, "DELETE", "/api/v1/namespaces/team-b/configmaps/x", true},
		"project: another project's space":       {projectP1, demoSpaces, "GET", "/api/v1/namespaces/team-c/pods", false},
		"project: its virtual cluster":           {projectP1, vc1, "GET", "/api/v1/nodes", true},
		"project: another project's vcluster":    {projectP1, vcOther, "GET", "/api", false},
		"project: vcluster without a project":    {anyProject, vc2, "GET", "/api", false},
		"project star: any project's vcluster":   {anyProject, vcOther, "GET", "/api", true},
		"project star: any space":                {anyProject, demoSpaces, "GET", "/api/v1/namespaces/team-c/pods", true},
		"project star: not a plain namespace":    {anyProject, demoSpaces, "GET", "/api/v1/namespaces/default/pods", false},
		"project: cluster-scoped":                {projectP1, demoSpaces, "GET", "/api/v1/namespaces", false},
		"project: discovery where it has spaces": {projectP1, demoSpaces, "GET", "/api", true},
		"project star: discovery":                {anyProject, demoSpaces, "GET", "/apis", true},
		"project star: no spaces, no discovery":  {anyProject, staging, "GET", "/apis", false},
		"project: management":                    {projectP1, edgepath.Ref{Kind: edgepath.KindManagement}, "GET", "/apis", false},
	})
}

// scopeCase is a request to ref and whether a key with scope may make it.
type scopeCase struct {
	scope        v1.AccessKeyScope
	ref          edgepath.Ref
	method, path string
	want         bool
}

func runScopeCases(t *testing.T, cases map[string]scopeCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Decide(key(scope(tc.scope)), tc.ref, attrs(t, tc.method, tc.path), created, Options{})
			if (got.Outcome == Allow) != tc.want {
				t.Errorf("%s %s on %s: %v (%s), want allowed=%v", tc.method, tc.path, tc.ref, got.Outcome, got.Message, tc.want)
			}
		})
	}
}
