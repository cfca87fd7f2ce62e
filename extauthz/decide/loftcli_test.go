package decide

import (
	"testing"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestLoftCLI(t *testing.T) {
	mgmt := edgepath.Ref{Kind: edgepath.KindManagement}
	allow := v1.AccessKeyScope{AllowLoftCLI: true}
	role := v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, Projects: []string{"p1"}, VirtualClusters: []string{"vc2"}}}}
	runScopeCases(t, map[string]scopeCase{
		"discovery":                 {allow, mgmt, "GET", "/apis/management.loft.sh/v1", true},
		"openapi":                   {allow, mgmt, "GET", "/openapi/v3/apis/management.loft.sh/v1", true},
		"who am I":                  {allow, mgmt, "POST", "/apis/management.loft.sh/v1/selves", true},
		"list projects":             {allow, mgmt, "GET", "/apis/management.loft.sh/v1/projects", true},
		"list vclusters of project": {allow, mgmt, "GET", "/apis/management.loft.sh/v1/namespaces/p-p1/virtualclusterinstances", true},
		"watch clusters":            {allow, mgmt, "GET", "/apis/management.loft.sh/v1/clusters?watch=1", true},
		"delete a project":          {allow, mgmt, "DELETE", "/apis/management.loft.sh/v1/projects/p1", false},
		"create a project":          {allow, mgmt, "POST", "/apis/management.loft.sh/v1/projects", false},
		"read access keys":          {allow, mgmt, "GET", "/apis/management.loft.sh/v1/ownedaccesskeys", false},
		"read users":                {allow, mgmt, "GET", "/apis/management.loft.sh/v1/users", false},
		"a subresource":             {allow, mgmt, "GET", "/apis/management.loft.sh/v1/virtualclusterinstances/x/kubeconfig", false},
		"another group":             {allow, mgmt, "GET", "/apis/storage.loft.sh/v1/clusters", false},
		"not on a cluster":          {allow, demo, "GET", "/version", false},
		"role: the allow-list":      {role, mgmt, "GET", "/apis/management.loft.sh/v1/projects", true},
		"role: its project":         {role, vc1, "GET", "/api/v1/pods", true},
		"role: its vcluster":        {role, vc2, "GET", "/api/v1/pods", true},
		"role: nothing else":        {role, staging, "GET", "/api/v1/pods", false},
		"unknown role":              {v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: "admin"}}}, mgmt, "GET", "/apis", false},
	})
}
