package v1_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// kinds are the kinds a server serves from this package, with the Go type each must decode to.
var kinds = map[string]runtime.Object{
	"OwnedAccessKey":     &v1.OwnedAccessKey{},
	"OwnedAccessKeyList": &v1.OwnedAccessKeyList{},
	"Self":               &v1.Self{},
	"SelfList":           &v1.SelfList{},
}

func TestSchemeNewInBothVersions(t *testing.T) {
	s := newScheme(t)
	for _, version := range []string{v1.Version, runtime.APIVersionInternal} {
		for kind, want := range kinds {
			gvk := schema.GroupVersionKind{Group: v1.GroupName, Version: version, Kind: kind}
			got, err := s.New(gvk)
			if err != nil {
				t.Errorf("New(%v): %v", gvk, err)
				continue
			}
			if reflect.TypeOf(got) != reflect.TypeOf(want) {
				t.Errorf("New(%v) = %T, want %T", gvk, got, want)
			}
		}
	}
	// The v1 group version must also know the meta kinds that query parameters and watch
	// streams decode into.
	for _, kind := range []string{"ListOptions", "GetOptions", "DeleteOptions", "WatchEvent"} {
		if !s.Recognizes(v1.SchemeGroupVersion.WithKind(kind)) {
			t.Errorf("v1 does not recognise %s: metav1.AddToGroupVersion missing", kind)
		}
	}
	if got := v1.Resource("ownedaccesskeys"); got != (schema.GroupResource{Group: "management.loft.sh", Resource: "ownedaccesskeys"}) {
		t.Errorf("Resource = %v", got)
	}
}

// objects returns one fully populated object of every kind, so that a field the codec drops shows
// up as a difference.
func objects() map[string]runtime.Object {
	at := metav1.NewTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	scope := &v1.AccessKeyScope{
		Roles:           []v1.AccessKeyScopeRole{{Role: v1.AccessKeyScopeRoleLoftCLI, Projects: []string{"p"}, VirtualClusters: []string{"vc"}}},
		Projects:        []v1.AccessKeyScopeProject{{Project: "p"}},
		Spaces:          []v1.AccessKeyScopeSpace{{Project: "p", Space: "*"}},
		VirtualClusters: []v1.AccessKeyScopeVirtualCluster{{Project: "p", VirtualCluster: "vc"}},
		Clusters:        []v1.AccessKeyScopeCluster{{Cluster: "prod"}},
		Rules: []v1.AccessKeyScopeRule{{
			Verbs:           []string{"get"},
			Resources:       []v1.GroupResources{{Group: "apps", Resources: []string{"deployments/*"}, ResourceNames: []string{"web"}}},
			Namespaces:      []string{"", "demo"},
			RequestTargets:  []v1.RequestTarget{v1.RequestTargetCluster},
			Cluster:         "prod",
			VirtualClusters: []v1.AccessKeyVirtualCluster{{Name: "vc", Namespace: "ns"}},
		}, {NonResourceURLs: []string{"/healthz*"}}},
		AllowLoftCLI: true,
	}
	key := v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", UID: "u1", ResourceVersion: "7", CreationTimestamp: at, Labels: map[string]string{"a": "b"}},
		Spec: v1.OwnedAccessKeySpec{
			DisplayName: "CI", Description: "deploys", User: "alice", Subject: "alice@example.com",
			Groups: []string{"dev"}, Key: "kg_0123456789abcdef0123456789abcdef", Disabled: true,
			TTL: 3600, TTLAfterLastActivity: true, Scope: scope, Type: v1.AccessKeyTypeUser,
			Identity: &v1.AccessKeyIdentity{
				UserID: "1", Username: "alice", PreferredUsername: "al", Email: "a@example.com",
				EmailVerified: true, Groups: []string{"sso"}, Connector: "github", ConnectorData: []byte{0, 1, 2},
			},
			IdentityRefresh: &at,
			OIDCProvider:    &v1.AccessKeyOIDCProvider{ClientID: "c", Nonce: "n", RedirectURI: "https://x/cb", Scopes: "openid"},
			Parent:          "parent",
			OIDCLogin:       &v1.AccessKeyOIDC{IDToken: []byte("i"), AccessToken: []byte("a"), RefreshToken: []byte("r"), LastRefresh: &at},
		},
		Status: v1.OwnedAccessKeyStatus{LastActivity: &at},
	}
	team := v1.EntityInfo{Name: "platform", DisplayName: "Platform"}
	self := v1.Self{
		ObjectMeta: metav1.ObjectMeta{Name: "self", CreationTimestamp: at},
		Spec:       v1.SelfSpec{AccessKey: "other"},
		Status: v1.SelfStatus{
			User: &v1.UserInfo{
				EntityInfo: v1.EntityInfo{Name: "alice", DisplayName: "Alice", Icon: "https://x/a.png", Username: "alice", Email: "a@example.com", Subject: "alice"},
				Teams:      []*v1.EntityInfo{&team},
			},
			Team: &team, AccessKey: "ci", AccessKeyScope: scope, AccessKeyType: v1.AccessKeyTypeUser,
			Subject: "alice", UID: "u1", Groups: []string{"dev"},
		},
	}
	return map[string]runtime.Object{
		"OwnedAccessKey":     &key,
		"OwnedAccessKeyList": &v1.OwnedAccessKeyList{ListMeta: metav1.ListMeta{ResourceVersion: "9", Continue: "c"}, Items: []v1.OwnedAccessKey{key}},
		"Self":               &self,
		"SelfList":           &v1.SelfList{Items: []v1.Self{self}},
	}
}

// TestJSONRoundTrip encodes every kind as a server does (LegacyCodec to v1) and decodes it both
// as a client does (v1, no conversion) and as a server does (into the internal version).
func TestJSONRoundTrip(t *testing.T) {
	s := newScheme(t)
	codecs := serializer.NewCodecFactory(s)
	encoder := codecs.LegacyCodec(v1.SchemeGroupVersion)
	for kind, obj := range objects() {
		t.Run(kind, func(t *testing.T) {
			data, err := runtime.Encode(encoder, obj.DeepCopyObject())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(`"apiVersion":"management.loft.sh/v1"`)) || !bytes.Contains(data, []byte(`"kind":"`+kind+`"`)) {
				t.Fatalf("encoded object lacks apiVersion or kind: %s", data)
			}
			want := obj.DeepCopyObject()
			want.GetObjectKind().SetGroupVersionKind(v1.SchemeGroupVersion.WithKind(kind))

			external, err := runtime.Decode(codecs.UniversalDeserializer(), data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, external); diff != "" {
				t.Errorf("v1 round trip changed the object (-want +got):\n%s", diff)
			}

			internal, err := runtime.Decode(codecs.UniversalDecoder(), data)
			if err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(internal) != reflect.TypeOf(obj) {
				t.Fatalf("decoded into %T, want %T", internal, obj)
			}
			again, err := runtime.Encode(encoder, internal)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("internal round trip changed the JSON:\n%s\n%s", data, again)
			}
		})
	}
}

// TestFuzzedRoundTrip is Kubernetes' own round-trip test (internal -> v1 -> JSON/YAML -> v1 ->
// internal, with randomly filled objects), which also checks the generated deep copies.
func TestFuzzedRoundTrip(t *testing.T) {
	roundtrip.RoundTripTestForAPIGroup(t, func(s *runtime.Scheme) { utilruntime.Must(v1.AddToScheme(s)) }, nil)
}
