package decide

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

var (
	created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	demo    = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	staging = edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "staging"}
	grafana = edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}
	vc1     = edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "ns", VirtualCluster: "vc1", Project: "p1"}
	vc2     = edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "staging", Namespace: "ns", VirtualCluster: "vc2"}
)

type keyOpt func(*v1.OwnedAccessKey)

func key(opts ...keyOpt) *v1.OwnedAccessKey {
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "k1", CreationTimestamp: metav1.NewTime(created)}, Spec: v1.OwnedAccessKeySpec{User: "alice"}}
	for _, o := range opts {
		o(k)
	}
	return k
}

func ttl(s int64) keyOpt { return func(k *v1.OwnedAccessKey) { k.Spec.TTL = s } }
func afterActivity(last time.Time) keyOpt {
	return func(k *v1.OwnedAccessKey) {
		k.Spec.TTLAfterLastActivity = true
		if !last.IsZero() {
			k.Status.LastActivity = &metav1.Time{Time: last}
		}
	}
}
func scope(s v1.AccessKeyScope) keyOpt { return func(k *v1.OwnedAccessKey) { k.Spec.Scope = &s } }
func disabled(k *v1.OwnedAccessKey)    { k.Spec.Disabled = true }
func refreshToken(k *v1.OwnedAccessKey) {
	k.Spec.Type = v1.AccessKeyTypeOIDCRefreshToken
	k.Spec.OIDCProvider = &v1.AccessKeyOIDCProvider{ClientID: "argocd", Scopes: "openid offline_access"}
}

func TestDecide(t *testing.T) {
	hour := time.Hour
	tests := map[string]struct {
		key    *v1.OwnedAccessKey
		ref    edgepath.Ref
		now    time.Time
		opts   Options
		want   Outcome
		reason string
	}{
		"no ttl never expires":                   {key(), demo, created.Add(100 * 365 * 24 * hour), Options{}, Allow, ""},
		"before expiry":                          {key(ttl(3600)), demo, created.Add(hour - time.Second), Options{}, Allow, ""},
		"at the expiry instant":                  {key(ttl(3600)), demo, created.Add(hour), Options{}, Unauthenticated, "expired"},
		"after expiry":                           {key(ttl(3600)), demo, created.Add(2 * hour), Options{}, Unauthenticated, "expired"},
		"disabled":                               {key(disabled), demo, created, Options{}, Unauthenticated, "disabled"},
		"an OIDC refresh token is no bearer key": {key(refreshToken), demo, created, Options{}, Unauthenticated, "refresh token"},
		"an OIDC refresh token, management":      {key(refreshToken), edgepath.Ref{Kind: edgepath.KindManagement}, created, Options{}, Unauthenticated, "refresh token"},
		"an OIDC refresh token, grafana":         {key(refreshToken), grafana, created, Options{}, Unauthenticated, "refresh token"},
		"disabled wins over scope":               {key(disabled, scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), demo, created, Options{}, Unauthenticated, "disabled"},
		"ttl after activity, recent activity":    {key(ttl(3600), afterActivity(created.Add(10*hour))), demo, created.Add(10*hour + 30*time.Minute), Options{}, Allow, ""},
		"ttl after activity, idle too long":      {key(ttl(3600), afterActivity(created.Add(10*hour))), demo, created.Add(11 * hour), Options{}, Unauthenticated, "expired"},
		"ttl after activity, never used":         {key(ttl(3600), afterActivity(time.Time{})), demo, created.Add(2 * hour), Options{}, Unauthenticated, "expired"},
		"max ttl caps a longer ttl":              {key(ttl(7200)), demo, created.Add(hour), Options{MaxTTL: hour}, Unauthenticated, "expired"},
		"max ttl leaves a shorter ttl":           {key(ttl(60)), demo, created.Add(2 * time.Minute), Options{MaxTTL: hour}, Unauthenticated, "expired"},
		"max ttl gives an expiry to no ttl":      {key(), demo, created.Add(hour), Options{MaxTTL: hour}, Unauthenticated, "expired"},
		"max ttl, within it":                     {key(), demo, created.Add(hour - time.Second), Options{MaxTTL: hour}, Allow, ""},
		"huge ttl does not overflow":             {key(ttl(1 << 62)), demo, created.Add(hour), Options{}, Allow, ""},
		"empty scope is unscoped":                {key(scope(v1.AccessKeyScope{})), staging, created, Options{}, Allow, ""},
		"cluster scope, that cluster":            {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), demo, created, Options{}, Allow, ""},
		"cluster scope, other cluster":           {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), staging, created, Options{}, Forbidden, "scope"},
		"cluster scope, its grafana":             {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), grafana, created, Options{}, Allow, ""},
		"cluster scope, its virtual cluster":     {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), vc1, created, Options{}, Allow, ""},
		"cluster scope, management":              {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), edgepath.Ref{Kind: edgepath.KindManagement}, created, Options{}, Forbidden, "scope"},
		"cluster scope star":                     {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "*"}}})), staging, created, Options{}, Allow, ""},
		"virtual cluster scope, match":           {key(scope(v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p1", VirtualCluster: "vc1"}}})), vc1, created, Options{}, Allow, ""},
		"virtual cluster scope, star":            {key(scope(v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p1", VirtualCluster: "*"}}})), vc1, created, Options{}, Allow, ""},
		"virtual cluster scope, other":           {key(scope(v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p1", VirtualCluster: "vc1"}}})), vc2, created, Options{}, Forbidden, "scope"},
		"virtual cluster scope, wrong project":   {key(scope(v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p2", VirtualCluster: "vc1"}}})), vc1, created, Options{}, Forbidden, "scope"},
		"virtual cluster scope, its host":        {key(scope(v1.AccessKeyScope{VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p1", VirtualCluster: "vc1"}}})), demo, created, Options{}, Forbidden, "scope"},
		"unevaluated scope field covers nothing": {key(scope(v1.AccessKeyScope{Spaces: []v1.AccessKeyScopeSpace{{Project: "p1", Space: "ns"}}})), demo, created, Options{}, Forbidden, "scope"},
		"allowLoftCli alone covers no cluster":   {key(scope(v1.AccessKeyScope{AllowLoftCLI: true})), demo, created, Options{}, Forbidden, "scope"},
		"scoped key, path naming no target":      {key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}})), edgepath.Ref{Kind: edgepath.KindNone}, created, Options{}, Allow, ""},
		"expired key, path naming no target":     {key(ttl(1)), edgepath.Ref{Kind: edgepath.KindNone}, created.Add(hour), Options{}, Unauthenticated, "expired"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Decide(tc.key, tc.ref, attrs(t, "GET", "/api"), tc.now, tc.opts)
			if got.Outcome != tc.want || got.Reason != tc.reason {
				t.Errorf("Decide = %v (%s: %s), want %v (%s)", got.Outcome, got.Reason, got.Message, tc.want, tc.reason)
			}
			if got.Outcome != Allow && got.Message == "" {
				t.Error("a denial must say why")
			}
		})
	}
}

func TestForbiddenMessageNamesOnlyTheTarget(t *testing.T) {
	k := key(scope(v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "secret-prod"}}}))
	got := Decide(k, staging, attrs(t, "GET", "/api"), created, Options{})
	want := `access key "k1" is not allowed to get /api on cluster "staging"`
	if got.Message != want {
		t.Errorf("message = %q, want %q", got.Message, want)
	}
}

// A scoped key's request whose attributes could not be read is refused, whatever its scope:
// zero attributes have an empty path and verb, which an empty rule, `nonResourceURLs: ["*"]`
// or a whole-cluster entry would otherwise match. Unscoped keys never look at attributes.
func TestUnparsedRequestsFailClosed(t *testing.T) {
	scopes := map[string]v1.AccessKeyScope{
		"empty rule":         {Rules: []v1.AccessKeyScopeRule{{}}},
		"every non-resource": {Rules: []v1.AccessKeyScopeRule{{NonResourceURLs: []string{"*"}}}},
		"cluster-scoped":     {Rules: []v1.AccessKeyScopeRule{{Namespaces: []string{""}}}},
		"every verb":         {Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"*"}}}},
		"whole cluster":      {Clusters: []v1.AccessKeyScopeCluster{{Cluster: "*"}}},
		"project":            {Projects: []v1.AccessKeyScopeProject{{Project: "*"}}},
	}
	for name, s := range scopes {
		t.Run(name, func(t *testing.T) {
			got := Decide(key(scope(s)), demo, attributes.Attributes{}, created, Options{})
			want := `access key "k1" is not allowed to send this request to cluster "demo": its method or path is not one Kubernetes can authorize`
			if got.Outcome != Forbidden || got.Reason != "unparsed" || got.Message != want {
				t.Errorf("Decide = %v (%s: %s), want forbidden (unparsed: %s)", got.Outcome, got.Reason, got.Message, want)
			}
		})
	}
	if got := Decide(key(), demo, attributes.Attributes{}, created, Options{}); got.Outcome != Allow {
		t.Errorf("an unscoped key: %v (%s); the upstream decides for it", got.Outcome, got.Message)
	}
}
