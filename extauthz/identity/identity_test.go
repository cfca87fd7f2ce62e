package identity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func key(spec v1.OwnedAccessKeySpec) *v1.OwnedAccessKey {
	return &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "k1"}, Spec: spec}
}

func TestHeaders(t *testing.T) {
	alice := key(v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev", "system:authenticated", "dev"}})
	team := key(v1.OwnedAccessKeySpec{Team: "platform"})
	tests := map[string]struct {
		key        *v1.OwnedAccessKey
		userGroups []string
		kind       edgepath.Kind
		opts       Options
		want       []Header
	}{
		"cluster, user key": {alice, nil, edgepath.KindCluster, Options{}, []Header{
			{"Impersonate-User", "alice"},
			{"Impersonate-Group", "dev"},
			{"Impersonate-Group", "system:authenticated"},
			{"Impersonate-Group", "loft:user:alice"},
			{"Impersonate-Extra-Loft-Access-Key", "k1"},
		}},
		"virtual cluster, team key": {team, nil, edgepath.KindVirtualCluster, Options{}, []Header{
			{"Impersonate-User", "loft:team:platform"},
			{"Impersonate-Group", "loft:team:platform"},
			{"Impersonate-Group", "system:authenticated"},
			{"Impersonate-Extra-Loft-Access-Key", "k1"},
		}},
		"management": {alice, nil, edgepath.KindManagement, Options{}, []Header{
			{"X-Remote-User", "alice"},
			{"X-Remote-Group", "dev"},
			{"X-Remote-Group", "system:authenticated"},
			{"X-Remote-Group", "loft:user:alice"},
			{"X-Remote-Extra-Loft-Access-Key", "k1"},
		}},
		"cluster, user key with the user's groups": {alice, []string{"ops", "dev"}, edgepath.KindCluster, Options{}, []Header{
			{"Impersonate-User", "alice"},
			{"Impersonate-Group", "dev"},
			{"Impersonate-Group", "system:authenticated"},
			{"Impersonate-Group", "ops"},
			{"Impersonate-Group", "loft:user:alice"},
			{"Impersonate-Extra-Loft-Access-Key", "k1"},
		}},
		"grafana default header": {alice, nil, edgepath.KindGrafana, Options{}, []Header{{"X-WEBAUTH-USER", "alice"}}},
		"grafana custom header":  {team, nil, edgepath.KindGrafana, Options{GrafanaUserHeader: "X-Grafana-User"}, []Header{{"X-Grafana-User", "loft:team:platform"}}},
		"grafana groups, as a JSON list": {alice, []string{"ops team", "a,b"}, edgepath.KindGrafana, Options{GrafanaGroupsHeader: "X-WEBAUTH-GROUPS"}, []Header{
			{"X-WEBAUTH-USER", "alice"},
			{"X-WEBAUTH-GROUPS", `["dev","system:authenticated","ops team","a,b","loft:user:alice"]`},
		}},
		"grafana groups of a key without any": {key(v1.OwnedAccessKeySpec{User: "bob"}), nil, edgepath.KindGrafana, Options{GrafanaGroupsHeader: "X-Groups"}, []Header{
			{"X-WEBAUTH-USER", "bob"},
			{"X-Groups", `["loft:user:bob","system:authenticated"]`},
		}},
		"no target":     {alice, nil, edgepath.KindNone, Options{}, nil},
		"public target": {alice, nil, edgepath.KindAuth, Options{}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Headers(tc.key, tc.userGroups, tc.kind, tc.opts)); diff != "" {
				t.Errorf("Headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsIdentityHeader(t *testing.T) {
	tests := map[string]bool{
		"Impersonate-User": true, "impersonate-group": true, "Impersonate-Uid": true, "impersonate-extra-scopes": true,
		"X-Remote-User": true, "x-remote-extra-foo": true,
		// Every header Grafana's documentation names for its auth proxy, in any letter case.
		"x-webauth-user": true, "X-WEBAUTH-ROLE": true, "x-WebAuth-Email": true, "X-Webauth-Name": true,
		"x-webauth-groups": true, "X-WEBAUTH-LOGIN": true,
		"authorization": false, "x-forwarded-for": false, "impersonate": false, "content-type": false,
		"x-webauth-other": false, "x-grafana-user": false,
	}
	for name, want := range tests {
		if got := IsIdentityHeader(name, Options{}); got != want {
			t.Errorf("IsIdentityHeader(%q) = %v, want %v", name, got, want)
		}
	}
	// A configured list replaces the defaults; the user and groups headers are removed anyway.
	opts := Options{GrafanaUserHeader: "X-Grafana-User", GrafanaGroupsHeader: "X-Grafana-Groups", GrafanaAuthProxyHeaders: []string{"X-Grafana-Role"}}
	for name, want := range map[string]bool{
		"x-grafana-user": true, "X-GRAFANA-GROUPS": true, "x-grafana-role": true, "x-webauth-role": false, "impersonate-user": true,
	} {
		if got := IsIdentityHeader(name, opts); got != want {
			t.Errorf("with %+v: IsIdentityHeader(%q) = %v, want %v", opts, name, got, want)
		}
	}
}
