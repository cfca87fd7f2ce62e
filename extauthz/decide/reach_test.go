package decide

import (
	"testing"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// TestReachesAgreesWithDecide holds the management API's list of reachable targets
// (accesskey.Reaches) to the edge's decisions: a target is listed exactly when some request to
// it passes. The probes are requests each kind of scope entry lets through.
func TestReachesAgreesWithDecide(t *testing.T) {
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=p1,team-c=p2"}
	refs := []edgepath.Ref{demo, staging, vc1, vc2}
	probes := [][2]string{
		{"GET", "/api"}, {"GET", "/api/v1/namespaces/team-a/pods"}, {"GET", "/api/v1/namespaces/team-c/pods"},
		{"GET", "/api/v1/namespaces/ci/pods"}, {"GET", "/version"},
	}
	scopes := map[string]v1.AccessKeyScope{
		"none":               {},
		"cluster demo":       {Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}},
		"cluster star":       {Clusters: []v1.AccessKeyScopeCluster{{Cluster: "*"}}},
		"vcluster vc1":       {VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p1", VirtualCluster: "vc1"}}},
		"vcluster wrong prj": {VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p2", VirtualCluster: "vc1"}}},
		"space team-a":       {Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "team-a"}}},
		"space elsewhere":    {Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "team-z"}}},
		"project p2":         {Projects: []v1.AccessKeyScopeProject{{Project: "p2"}}},
		"project star":       {Projects: []v1.AccessKeyScopeProject{{Project: "*"}}},
		"loft cli only":      {AllowLoftCLI: true},
		"role with project":  {Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, Projects: []string{"p1"}}}},
		"role with vcluster": {Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, VirtualClusters: []string{"vc2"}}}},
		"rule ci namespace":  {Rules: []v1.AccessKeyScopeRule{{Cluster: "demo", Namespaces: []string{"ci"}}}},
		"rule read-only":     {Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get", "list", "watch"}}}},
		"rule management":    {Rules: []v1.AccessKeyScopeRule{{RequestTargets: []v1.RequestTarget{v1.RequestTargetManagement}}}},
		"rule vcluster":      {Rules: []v1.AccessKeyScopeRule{{VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc2"}}}}},
		"rule contradicts":   {Rules: []v1.AccessKeyScopeRule{{Namespaces: []string{"ci"}, NonResourceURLs: []string{"/api"}}}},
	}
	for name, s := range scopes {
		for _, ref := range refs {
			passes := false
			for _, p := range probes {
				if Decide(key(scope(s)), ref, attrs(t, p[0], p[1]), created, Options{}).Outcome == Allow {
					passes = true
				}
			}
			if got := accesskey.Reaches(&s, ref); got != passes {
				t.Errorf("scope %q, %s: Reaches = %v, but a probe passes = %v", name, ref, got, passes)
			}
		}
	}
}
