package decide

import (
	"testing"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func attrs(t testing.TB, method, path string) attributes.Attributes {
	t.Helper()
	a, err := attributes.FromRequest(method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRules(t *testing.T) {
	mgmt := edgepath.Ref{Kind: edgepath.KindManagement}
	tests := map[string]struct {
		rule         v1.AccessKeyScopeRule
		ref          edgepath.Ref
		method, path string
		want         bool
	}{
		"empty rule matches everything":      {v1.AccessKeyScopeRule{}, demo, "DELETE", "/api/v1/namespaces/a/pods/p", true},
		"verbs allow get":                    {v1.AccessKeyScopeRule{Verbs: []string{"get", "list"}}, demo, "GET", "/api/v1/namespaces/a/pods", true},
		"verbs refuse create":                {v1.AccessKeyScopeRule{Verbs: []string{"get", "list"}}, demo, "POST", "/api/v1/namespaces/a/pods", false},
		"verbs refuse delete":                {v1.AccessKeyScopeRule{Verbs: []string{"get", "list"}}, demo, "DELETE", "/api/v1/namespaces/a/pods/p", false},
		"verbs refuse watch":                 {v1.AccessKeyScopeRule{Verbs: []string{"get", "list"}}, demo, "GET", "/api/v1/namespaces/a/pods?watch=1", false},
		"verb star":                          {v1.AccessKeyScopeRule{Verbs: []string{"*"}}, demo, "PATCH", "/api/v1/namespaces/a/pods/p", true},
		"resource exact":                     {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods"}}}}, demo, "GET", "/api/v1/namespaces/a/pods", true},
		"resource excludes its subresources": {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods"}}}}, demo, "POST", "/api/v1/namespaces/a/pods/p/exec", false},
		"resource of another group":          {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Group: "apps", Resources: []string{"pods"}}}}, demo, "GET", "/api/v1/namespaces/a/pods", false},
		"grouped resource":                   {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Group: "apps", Resources: []string{"deployments"}}}}, demo, "GET", "/apis/apps/v1/namespaces/a/deployments", true},
		"res/sub":                            {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods/log"}}}}, demo, "GET", "/api/v1/namespaces/a/pods/p/log", true},
		"res/sub is not the resource":        {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods/log"}}}}, demo, "GET", "/api/v1/namespaces/a/pods/p", false},
		"star covers subresources":           {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"*"}}}}, demo, "POST", "/api/v1/namespaces/a/pods/p/exec", true},
		"star is per group":                  {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"*"}}}}, demo, "GET", "/apis/apps/v1/deployments", false},
		"*/sub":                              {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Group: "apps", Resources: []string{"*/scale"}}}}, demo, "PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale", true},
		"*/sub is not the resource":          {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Group: "apps", Resources: []string{"*/scale"}}}}, demo, "GET", "/apis/apps/v1/namespaces/a/deployments/d", false},
		"res/*":                              {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods/*"}}}}, demo, "GET", "/api/v1/namespaces/a/pods/p/log", true},
		"res/* is not the resource":          {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"pods/*"}}}}, demo, "GET", "/api/v1/namespaces/a/pods/p", false},
		"resourceNames match":                {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"configmaps"}, ResourceNames: []string{"cfg"}}}}, demo, "GET", "/api/v1/namespaces/a/configmaps/cfg", true},
		"resourceNames refuse others":        {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"configmaps"}, ResourceNames: []string{"cfg"}}}}, demo, "GET", "/api/v1/namespaces/a/configmaps/other", false},
		"resourceNames refuse list":          {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"configmaps"}, ResourceNames: []string{"cfg"}}}}, demo, "GET", "/api/v1/namespaces/a/configmaps", false},
		"namespace match":                    {v1.AccessKeyScopeRule{Namespaces: []string{"a"}}, demo, "GET", "/api/v1/namespaces/a/pods", true},
		"namespace other":                    {v1.AccessKeyScopeRule{Namespaces: []string{"a"}}, demo, "GET", "/api/v1/namespaces/b/pods", false},
		"namespace refuses cluster-scoped":   {v1.AccessKeyScopeRule{Namespaces: []string{"a"}}, demo, "GET", "/api/v1/nodes", false},
		"namespace refuses all-namespaces":   {v1.AccessKeyScopeRule{Namespaces: []string{"a"}}, demo, "GET", "/api/v1/pods", false},
		"empty namespace is cluster-scoped":  {v1.AccessKeyScopeRule{Namespaces: []string{""}}, demo, "GET", "/api/v1/nodes", true},
		"empty namespace refuses namespaced": {v1.AccessKeyScopeRule{Namespaces: []string{""}}, demo, "GET", "/api/v1/namespaces/a/pods", false},
		"namespaces make it resource-only":   {v1.AccessKeyScopeRule{Namespaces: []string{"a"}}, demo, "GET", "/version", false},
		"resources make it resource-only":    {v1.AccessKeyScopeRule{Resources: []v1.GroupResources{{Resources: []string{"*"}}}}, demo, "GET", "/version", false},
		"non-resource exact":                 {v1.AccessKeyScopeRule{NonResourceURLs: []string{"/version"}}, demo, "GET", "/version", true},
		"non-resource exact, other path":     {v1.AccessKeyScopeRule{NonResourceURLs: []string{"/version"}}, demo, "GET", "/healthz", false},
		"non-resource exact is not a prefix": {v1.AccessKeyScopeRule{NonResourceURLs: []string{"/version"}}, demo, "GET", "/versionx", false},
		"non-resource prefix":                {v1.AccessKeyScopeRule{NonResourceURLs: []string{"/healthz*"}}, demo, "GET", "/healthz/etcd", true},
		"non-resource star":                  {v1.AccessKeyScopeRule{NonResourceURLs: []string{"*"}}, demo, "GET", "/openapi/v2", true},
		"non-resource refuses resources":     {v1.AccessKeyScopeRule{NonResourceURLs: []string{"*"}}, demo, "GET", "/api/v1/namespaces", false},
		"mixed rule matches nothing":         {v1.AccessKeyScopeRule{NonResourceURLs: []string{"*"}, Namespaces: []string{"a"}}, demo, "GET", "/api/v1/namespaces/a/pods", false},
		"cluster match":                      {v1.AccessKeyScopeRule{Cluster: "demo"}, demo, "GET", "/api/v1/pods", true},
		"cluster other":                      {v1.AccessKeyScopeRule{Cluster: "demo"}, staging, "GET", "/api/v1/pods", false},
		"cluster covers its vclusters":       {v1.AccessKeyScopeRule{Cluster: "demo"}, vc1, "GET", "/api/v1/pods", true},
		"cluster refuses management":         {v1.AccessKeyScopeRule{Cluster: "demo"}, mgmt, "GET", "/apis", false},
		"cluster with request target":        {v1.AccessKeyScopeRule{Cluster: "demo", RequestTargets: []v1.RequestTarget{v1.RequestTargetCluster}}, vc1, "GET", "/api/v1/pods", false},
		"request target cluster":             {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetCluster}}, staging, "GET", "/api", true},
		"request target management":          {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetManagement}}, mgmt, "GET", "/apis", true},
		"request target refuses other kind":  {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetManagement}}, demo, "GET", "/apis", false},
		"request target virtual cluster":     {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetVirtualCluster}}, vc1, "GET", "/api", true},
		"project virtual cluster":            {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetProjectVirtualCluster}}, vc1, "GET", "/api", true},
		"project virtual cluster, none":      {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetProjectVirtualCluster}}, vc2, "GET", "/api", false},
		"project space matches nothing yet":  {v1.AccessKeyScopeRule{RequestTargets: []v1.RequestTarget{v1.RequestTargetProjectSpace}}, demo, "GET", "/api", false},
		"virtual clusters match":             {v1.AccessKeyScopeRule{VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc1", Namespace: "ns"}}}, vc1, "GET", "/api", true},
		"virtual clusters wrong namespace":   {v1.AccessKeyScopeRule{VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc1", Namespace: "other"}}}, vc1, "GET", "/api", false},
		"virtual clusters refuse host":       {v1.AccessKeyScopeRule{VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc1"}}}, demo, "GET", "/api", false},
		"read-only in one namespace of one cluster": {v1.AccessKeyScopeRule{Cluster: "demo", Verbs: []string{"get", "list", "watch"}, Namespaces: []string{"ci"}},
			demo, "GET", "/apis/apps/v1/namespaces/ci/deployments?watch=true", true},
		"read-only in one namespace, a write": {v1.AccessKeyScopeRule{Cluster: "demo", Verbs: []string{"get", "list", "watch"}, Namespaces: []string{"ci"}},
			demo, "DELETE", "/apis/apps/v1/namespaces/ci/deployments/d", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k := key(scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{tc.rule}}))
			got := Decide(k, tc.ref, attrs(t, tc.method, tc.path), created, Options{})
			if (got.Outcome == Allow) != tc.want {
				t.Errorf("%s %s on %s: %v (%s), want allowed=%v", tc.method, tc.path, tc.ref, got.Outcome, got.Message, tc.want)
			}
		})
	}
}

func TestDenialSaysWhatWasRefused(t *testing.T) {
	k := key(scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get"}}}}))
	tests := map[string]struct {
		method, path string
		ref          edgepath.Ref
		want         string
	}{
		"namespaced": {"DELETE", "/apis/apps/v1/namespaces/ci/deployments/web", demo,
			`access key "k1" is not allowed to delete deployments.apps "web" in namespace "ci" on cluster "demo"`},
		"subresource": {"POST", "/api/v1/namespaces/ci/pods/p/exec", vc1,
			`access key "k1" is not allowed to create pods/exec "p" in namespace "ci" on virtual cluster "vc1" in namespace "ns" of cluster "demo"`},
		"non-resource": {"POST", "/healthz", staging, `access key "k1" is not allowed to post /healthz on cluster "staging"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Decide(k, tc.ref, attrs(t, tc.method, tc.path), created, Options{})
			if got.Message != tc.want {
				t.Errorf("message\n got %s\nwant %s", got.Message, tc.want)
			}
		})
	}
}

// FuzzDecide checks the invariants of a decision over arbitrary requests and rules: a scope only
// narrows (a scoped key never reaches what the unscoped key could not), adding a rule never
// takes access away, and a disabled key never passes.
func FuzzDecide(f *testing.F) {
	f.Add("GET", "/api/v1/namespaces/a/pods", "get", "", "pods", "a", "/version", "demo")
	f.Add("POST", "/apis/apps/v1/namespaces/b/deployments/d/scale", "*", "apps", "*/scale", "", "*", "")
	f.Add("DELETE", "/healthz/etcd", "delete", "", "", "", "/healthz*", "staging")
	f.Fuzz(func(t *testing.T, method, path, verb, group, resource, namespace, url, cluster string) {
		a, err := attributes.FromRequest(method, path, nil)
		if err != nil {
			return
		}
		r1 := v1.AccessKeyScopeRule{Verbs: []string{verb}, Resources: []v1.GroupResources{{Group: group, Resources: []string{resource}}}, Namespaces: []string{namespace}}
		r2 := v1.AccessKeyScopeRule{NonResourceURLs: []string{url}, Cluster: cluster}
		for _, ref := range []edgepath.Ref{demo, staging, vc1, grafana, {Kind: edgepath.KindManagement}} {
			unscoped := Decide(key(), ref, a, created, Options{})
			if unscoped.Outcome != Allow {
				t.Fatalf("an unscoped valid key was refused: %s", unscoped.Message)
			}
			one := Decide(key(scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{r1}})), ref, a, created, Options{})
			both := Decide(key(scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{r1, r2}})), ref, a, created, Options{})
			if one.Outcome == Allow && both.Outcome != Allow {
				t.Errorf("adding a rule took access away: %s %s on %s", method, path, ref)
			}
			if one.Outcome != Allow && one.Message == "" {
				t.Error("a denial without a message")
			}
			if d := Decide(key(disabled, scope(v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{r1, r2}})), ref, a, created, Options{}); d.Outcome == Allow {
				t.Errorf("a disabled key passed: %s %s on %s", method, path, ref)
			}
		}
	})
}
