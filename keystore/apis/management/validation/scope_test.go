package validation

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestValidateAccessKeyScope(t *testing.T) {
	rule := func(r v1.AccessKeyScopeRule) *v1.AccessKeyScope {
		return &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{r}}
	}
	tests := []struct {
		name  string
		scope *v1.AccessKeyScope
		want  []wantErr
	}{
		{"valid: empty scope", &v1.AccessKeyScope{}, nil},
		{"valid: every kind of entry", &v1.AccessKeyScope{
			Roles:           []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, Projects: []string{"demo"}, VirtualClusters: []string{"vc"}}},
			Projects:        []v1.AccessKeyScopeProject{{Project: "*"}},
			Spaces:          []v1.AccessKeyScopeSpace{{Project: "demo", Space: "*"}},
			VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "demo", VirtualCluster: "vc"}},
			Clusters:        []v1.AccessKeyScopeCluster{{Cluster: "prod"}},
			AllowLoftCLI:    true,
		}, nil},
		{"valid: an empty rule matches everything, as in audit policy", rule(v1.AccessKeyScopeRule{}), nil},
		{"valid: resource rule", rule(v1.AccessKeyScopeRule{
			Verbs:      []string{"get", "list", "*"},
			Resources:  []v1.GroupResources{{Group: "*", Resources: []string{"pods/log", "*/status", "deployments/*"}, ResourceNames: []string{"web"}}},
			Namespaces: []string{"", "demo"}, Cluster: "prod",
			RequestTargets:  []v1.RequestTarget{v1.RequestTargetCluster, v1.RequestTargetVirtualCluster},
			VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc"}},
		}), nil},
		{"valid: non-resource URLs", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"*", "/healthz", "/apis/*", "/"}}), nil},
		{"valid: every request target", rule(v1.AccessKeyScopeRule{RequestTargets: knownRequestTargets}), nil},

		{"role missing", &v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI}, {}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.roles[1].role"}}},
		{"unknown role", &v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: "admin"}}},
			[]wantErr{{field.ErrorTypeNotSupported, "scope.roles[0].role"}}},
		{"role with an empty project", &v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, Projects: []string{"a", ""}}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.roles[0].projects[1]"}}},
		{"role with an empty virtual cluster", &v1.AccessKeyScope{Roles: []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, VirtualClusters: []string{""}}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.roles[0].virtualClusters[0]"}}},
		{"project without a name", &v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "a"}, {}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.projects[1].project"}}},
		{"space without a project", &v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Space: "ns"}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.spaces[0].project"}}},
		{"space without a space", &v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "demo"}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.spaces[0].space"}}},
		{"virtual cluster without a project", &v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{VirtualCluster: "vc"}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.virtualClusters[0].project"}}},
		{"virtual cluster without a name", &v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "demo"}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.virtualClusters[0].virtualCluster"}}},
		{"cluster without a name", &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "prod"}, {}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.clusters[1].cluster"}}},

		{"empty verb", rule(v1.AccessKeyScopeRule{Verbs: []string{"get", ""}}),
			[]wantErr{{field.ErrorTypeRequired, "scope.rules[0].verbs[1]"}}},
		{"non-resource URL without a leading slash", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"/ok", "healthz"}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[1]"}}},
		{"empty non-resource URL", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{""}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[0]"}}},
		{"wildcard in the middle", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"/apis/*/v1"}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[0]"}}},
		{"two wildcards", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"/**"}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[0]"}}},
		{"relative with a wildcard in the middle: both problems", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"a*b"}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[0]"}, {field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs[0]"}}},
		{"non-resource URLs with resources", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"/healthz"}, Resources: []v1.GroupResources{{}}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs"}}},
		{"non-resource URLs with namespaces", rule(v1.AccessKeyScopeRule{NonResourceURLs: []string{"/healthz"}, Namespaces: []string{"demo"}}),
			[]wantErr{{field.ErrorTypeInvalid, "scope.rules[0].nonResourceURLs"}}},
		{"unknown request target", rule(v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetCluster, "Grafana"}}),
			[]wantErr{{field.ErrorTypeNotSupported, "scope.rules[0].requestTargets[1]"}}},
		{"rule virtual cluster without a name", rule(v1.AccessKeyScopeRule{VirtualClusters: []v1.AccessKeyVirtualCluster{{Namespace: "ns"}}}),
			[]wantErr{{field.ErrorTypeRequired, "scope.rules[0].virtualClusters[0].name"}}},
		{"errors name the rule they are in", &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{}, {Verbs: []string{""}}}},
			[]wantErr{{field.ErrorTypeRequired, "scope.rules[1].verbs[0]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, ValidateAccessKeyScope(tt.scope, field.NewPath("scope")), tt.want)
		})
	}
}
