package edgepath

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		path string
		want Ref
		rest string
	}{
		"cluster":                  {"/kubernetes/cluster/demo/api/v1/pods", Ref{Kind: KindCluster, Cluster: "demo"}, "/api/v1/pods"},
		"cluster with query":       {"/kubernetes/cluster/demo/api/v1/pods?watch=1", Ref{Kind: KindCluster, Cluster: "demo"}, "/api/v1/pods?watch=1"},
		"cluster root":             {"/kubernetes/cluster/demo/", Ref{Kind: KindCluster, Cluster: "demo"}, "/"},
		"cluster without slash":    {"/kubernetes/cluster/demo", Ref{Kind: KindCluster, Cluster: "demo"}, "/"},
		"cluster missing name":     {"/kubernetes/cluster/", Ref{Kind: KindNone}, "/kubernetes/cluster/"},
		"cluster bad name":         {"/kubernetes/cluster/Demo/api", Ref{Kind: KindNone}, "/kubernetes/cluster/Demo/api"},
		"cluster dot-dot":          {"/kubernetes/cluster/../api", Ref{Kind: KindNone}, "/kubernetes/cluster/../api"},
		"virtual cluster":          {"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/version", Ref{Kind: KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1"}, "/version"},
		"virtual cluster short":    {"/kubernetes/virtualcluster/demo/vcluster-demo", Ref{Kind: KindNone}, "/kubernetes/virtualcluster/demo/vcluster-demo"},
		"management":               {"/kubernetes/management/apis", Ref{Kind: KindManagement}, "/apis"},
		"grafana":                  {"/grafana/demo/api/health", Ref{Kind: KindGrafana, Cluster: "demo"}, "/api/health"},
		"auth":                     {"/auth/password/login", Ref{Kind: KindAuth}, "/password/login"},
		"oidc":                     {"/oidc/.well-known/openid-configuration", Ref{Kind: KindOIDC}, "/.well-known/openid-configuration"},
		"unknown":                  {"/api/v1/pods", Ref{Kind: KindNone}, "/api/v1/pods"},
		"root":                     {"/", Ref{Kind: KindNone}, "/"},
		"prefix of a prefix":       {"/kubernetes/clusters/demo/api", Ref{Kind: KindNone}, "/kubernetes/clusters/demo/api"},
		"grafana prefix lookalike": {"/grafanax/demo/", Ref{Kind: KindNone}, "/grafanax/demo/"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, rest := Parse(tc.path)
			if got != tc.want || rest != tc.rest {
				t.Errorf("Parse(%q) = %+v, %q; want %+v, %q", tc.path, got, rest, tc.want, tc.rest)
			}
		})
	}
}

func TestPrefixRoundTrip(t *testing.T) {
	refs := map[string]Ref{
		"cluster":         {Kind: KindCluster, Cluster: "demo"},
		"virtual cluster": {Kind: KindVirtualCluster, Cluster: "demo", Namespace: "ns", VirtualCluster: "vc1"},
		"grafana":         {Kind: KindGrafana, Cluster: "prod"},
		"management":      {Kind: KindManagement},
	}
	for name, r := range refs {
		t.Run(name, func(t *testing.T) {
			got, rest := Parse(r.Prefix() + "api")
			if got != r || rest != "/api" {
				t.Errorf("Parse(%q) = %+v, %q; want %+v, /api", r.Prefix()+"api", got, rest, r)
			}
		})
	}
}

func TestContextExtensionsRoundTrip(t *testing.T) {
	r := Ref{Kind: KindVirtualCluster, Cluster: "demo", Namespace: "ns", VirtualCluster: "vc1", Project: "p1"}
	got, ok, err := FromContextExtensions(r.ContextExtensions())
	if err != nil || !ok || got != r {
		t.Fatalf("round trip = %+v, %v, %v; want %+v", got, ok, err, r)
	}
	if _, ok, _ := FromContextExtensions(map[string]string{"other": "x"}); ok {
		t.Error("extensions without a kind must report no target")
	}
	if _, _, err := FromContextExtensions(map[string]string{ExtKind: "cluster", ExtCluster: "../x"}); err == nil {
		t.Error("a bad cluster name in extensions must be an error")
	}
	if _, _, err := FromContextExtensions(map[string]string{ExtKind: "bogus"}); err == nil {
		t.Error("an unknown kind must be an error")
	}
}

func TestSpaces(t *testing.T) {
	enc := FormatSpaces(map[string]string{"team-b": "p2", "team-a": "p1"})
	if enc != "team-a=p1,team-b=p2" {
		t.Fatalf("FormatSpaces = %q", enc)
	}
	r := Ref{Kind: KindCluster, Cluster: "demo", Spaces: enc}
	got, ok, err := FromContextExtensions(r.ContextExtensions())
	if err != nil || !ok || got != r {
		t.Fatalf("round trip = %+v, %v, %v", got, ok, err)
	}
	for ns, want := range map[string]string{"team-a": "p1", "team-b": "p2", "team": "", "p1": ""} {
		p, ok := r.SpaceProject(ns)
		if p != want || ok != (want != "") {
			t.Errorf("SpaceProject(%q) = %q, %v; want %q", ns, p, ok, want)
		}
	}
	for name, bad := range map[string]string{
		"no project":    "team-a",
		"bad namespace": "Team=p1",
		"bad project":   "team=P_1",
		"duplicate":     "a=p,a=q",
		"empty entry":   "a=p,",
	} {
		if _, err := ParseSpaces(bad); err == nil {
			t.Errorf("%s: ParseSpaces(%q) succeeded", name, bad)
		}
		if err := (Ref{Kind: KindCluster, Cluster: "demo", Spaces: bad}).Validate(); err == nil {
			t.Errorf("%s: a cluster with spaces %q validated", name, bad)
		}
	}
}

// Normal accepts what Envoy's normalisation (normalize_path, merge_slashes, escaped slashes
// rejected) leaves, and nothing it would have changed or rejected.
func TestNormal(t *testing.T) {
	normal := []string{"/", "/kubernetes/cluster/demo", "/kubernetes/cluster/demo/", "/kubernetes/cluster/demo/api/v1/namespaces?x=/../a//b%2F",
		"/oidc/.well-known/openid-configuration", "/grafana/demo/a..b/%41", "/kubernetes/cluster/demo/api/v1/namespaces/a%2eb"}
	for _, p := range normal {
		if err := Normal(p); err != nil {
			t.Errorf("Normal(%q) = %v, want nil", p, err)
		}
	}
	odd := []string{"", "kubernetes/cluster/demo", "//kubernetes/cluster/demo/api", "/kubernetes//cluster/demo/api", "/kubernetes/cluster/demo//api",
		"/kubernetes/cluster/demo/../staging/api", "/kubernetes/cluster/./demo/api", "/kubernetes/cluster/demo/..", "/kubernetes/cluster/demo/%2e%2e/staging/",
		"/kubernetes/cluster/demo/%2E./staging/", "/kubernetes/cluster/demo/%2e/api", "/kubernetes/cluster/demo%2F..%2Fstaging/api", "/kubernetes/cluster/demo/api%2fv1",
		"/kubernetes/cluster/demo%5c../staging", "/kubernetes/cluster/demo\\..\\staging", "/kubernetes/cluster/demo/api#frag", "/kubernetes/cluster/demo/%zz"}
	for _, p := range odd {
		if err := Normal(p); err == nil {
			t.Errorf("Normal(%q) = nil, want an error", p)
		}
	}
}

// The fast paths of the DNS-1123 checks accept exactly what Kubernetes' checks accept.
func TestDNSFastPathsAgreeWithKubernetes(t *testing.T) {
	for _, s := range []string{"demo", "a", "a.b", "a-b.c-d", "0", "9a", "vcluster-demo", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 127) + "a", "", "-a", "a-", "A", "a_b", "a..b", ".a", "a.", "a.-b", "a/b", "ä"} {
		checkDNSFastPaths(t, s)
	}
}

func FuzzDNSFastPaths(f *testing.F) {
	for _, s := range []string{"demo", "a.b", "a-", "A", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(checkDNSFastPaths)
}

func checkDNSFastPaths(t *testing.T, s string) {
	if got, want := len(isSubdomain(s)) == 0, len(validation.IsDNS1123Subdomain(s)) == 0; got != want {
		t.Errorf("isSubdomain(%q) valid = %v, Kubernetes says %v", s, got, want)
	}
	if got, want := len(isLabel(s)) == 0, len(validation.IsDNS1123Label(s)) == 0; got != want {
		t.Errorf("isLabel(%q) valid = %v, Kubernetes says %v", s, got, want)
	}
}

func TestStrippedByEdge(t *testing.T) {
	for name, want := range map[string]bool{"Impersonate-User": true, "impersonate-extra-scopes": true, "X-Remote-Group": true,
		"x-webauth-role": true, "X-WEBAUTH-USER": true, "X-Grafana-User": false, "Authorization": false, "impersonate": false, "x-webauth-other": false} {
		if got := StrippedByEdge(name); got != want {
			t.Errorf("StrippedByEdge(%q) = %v, want %v", name, got, want)
		}
	}
}
