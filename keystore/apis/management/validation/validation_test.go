package validation

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

const longKey = "kg_0123456789abcdef0123456789abcd" // 35 characters

func TestValidateOwnedAccessKey(t *testing.T) {
	tests := []struct {
		name   string
		modify func(k *v1.OwnedAccessKey)
		want   []wantErr
	}{
		{"valid: a user's key", func(k *v1.OwnedAccessKey) {}, nil},
		{"valid: a team's key", func(k *v1.OwnedAccessKey) { k.Spec.User, k.Spec.Team = "", "platform" }, nil},
		// The API server turns generateName into a name before it validates.
		{"valid: generateName with the generated name", func(k *v1.OwnedAccessKey) { k.Name, k.GenerateName = "ci-x7k2p", "ci-" }, nil},
		{"valid: a dotted name", func(k *v1.OwnedAccessKey) { k.Name = "ci.deploy.prod" }, nil},
		{"valid: every field set", func(k *v1.OwnedAccessKey) {
			k.Spec = v1.OwnedAccessKeySpec{
				DisplayName: "CI", Description: "deploys", User: "alice", Groups: []string{"dev"},
				Key: strings.Repeat("k", MinKeyLength), Disabled: true, TTL: 3600, TTLAfterLastActivity: true,
				Type: v1.AccessKeyTypeUser, Scope: &v1.AccessKeyScope{AllowLoftCLI: true},
			}
		}, nil},
		{"valid: ttl 0 never expires", func(k *v1.OwnedAccessKey) { k.Spec.TTL = 0 }, nil},

		{"name missing", func(k *v1.OwnedAccessKey) { k.Name = "" }, []wantErr{{field.ErrorTypeRequired, "metadata.name"}}},
		{"name with capitals", func(k *v1.OwnedAccessKey) { k.Name = "CI" }, []wantErr{{field.ErrorTypeInvalid, "metadata.name"}}},
		{"name with a slash", func(k *v1.OwnedAccessKey) { k.Name = "a/b" }, []wantErr{{field.ErrorTypeInvalid, "metadata.name"}}},
		{"name too long", func(k *v1.OwnedAccessKey) { k.Name = strings.Repeat("a", 254) }, []wantErr{{field.ErrorTypeInvalid, "metadata.name"}}},
		{"generateName with capitals", func(k *v1.OwnedAccessKey) { k.GenerateName = "CI-" }, []wantErr{{field.ErrorTypeInvalid, "metadata.generateName"}}},
		{"namespace on a cluster-scoped kind", func(k *v1.OwnedAccessKey) { k.Namespace = "default" }, []wantErr{{field.ErrorTypeForbidden, "metadata.namespace"}}},

		{"neither user nor team", func(k *v1.OwnedAccessKey) { k.Spec.User = "" }, []wantErr{{field.ErrorTypeRequired, "spec.user"}}},
		{"both user and team", func(k *v1.OwnedAccessKey) { k.Spec.Team = "platform" }, []wantErr{{field.ErrorTypeInvalid, "spec.user"}}},

		{"key of exactly 32 characters", func(k *v1.OwnedAccessKey) { k.Spec.Key = strings.Repeat("k", 32) }, nil},
		{"key of 31 characters", func(k *v1.OwnedAccessKey) { k.Spec.Key = strings.Repeat("k", 31) }, []wantErr{{field.ErrorTypeInvalid, "spec.key"}}},

		{"negative ttl", func(k *v1.OwnedAccessKey) { k.Spec.TTL = -1 }, []wantErr{{field.ErrorTypeInvalid, "spec.ttl"}}},

		{"unknown type", func(k *v1.OwnedAccessKey) { k.Spec.Type = "Robot" }, []wantErr{{field.ErrorTypeNotSupported, "spec.type"}}},
		{"type in the wrong case", func(k *v1.OwnedAccessKey) { k.Spec.Type = "user" }, []wantErr{{field.ErrorTypeNotSupported, "spec.type"}}},

		{"scope errors carry the spec.scope prefix", func(k *v1.OwnedAccessKey) {
			k.Spec.Scope = &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{}}}
		}, []wantErr{{field.ErrorTypeRequired, "spec.scope.clusters[0].cluster"}}},

		{"every problem at once", func(k *v1.OwnedAccessKey) {
			k.Name = ""
			k.Spec = v1.OwnedAccessKeySpec{Key: "short", TTL: -5, Type: "Robot"}
		}, []wantErr{
			{field.ErrorTypeRequired, "metadata.name"},
			{field.ErrorTypeRequired, "spec.user"},
			{field.ErrorTypeInvalid, "spec.key"},
			{field.ErrorTypeInvalid, "spec.ttl"},
			{field.ErrorTypeNotSupported, "spec.type"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := validKey()
			tt.modify(k)
			checkErrors(t, ValidateOwnedAccessKey(k), tt.want)
		})
	}
}

func TestKnownTypes(t *testing.T) {
	for _, typ := range append([]v1.AccessKeyType{v1.AccessKeyTypeNone}, knownTypes...) {
		t.Run(string(typ), func(t *testing.T) {
			k := validKey()
			k.Spec.Type = typ
			checkErrors(t, ValidateOwnedAccessKey(k), nil)
		})
	}
}

// The key is a secret: an error about it must say what is wrong without repeating it, since
// errors reach responses, audit logs and events.
func TestShortKeyErrorDoesNotEchoTheKey(t *testing.T) {
	k := validKey()
	k.Spec.Key = "s3cr3t-but-too-short"
	errs := ValidateOwnedAccessKey(k)
	if len(errs) != 1 {
		t.Fatalf("want one error, got %v", errs)
	}
	msg := errs.ToAggregate().Error()
	if !strings.Contains(msg, "at least 32 characters") {
		t.Errorf("message %q does not say the minimum", msg)
	}
	if strings.Contains(msg, k.Spec.Key) {
		t.Errorf("message %q repeats the key", msg)
	}
	if s, ok := errs[0].BadValue.(string); ok && s == k.Spec.Key {
		t.Errorf("the error carries the key as its value")
	}
}

func TestValidateOwnedAccessKeyUpdate(t *testing.T) {
	created := metav1.NewTime(metav1.Now().Rfc3339Copy().Time)
	old := func() *v1.OwnedAccessKey {
		k := validKey()
		k.UID, k.ResourceVersion, k.CreationTimestamp = "uid-1", "7", created
		return k
	}
	tests := []struct {
		name   string
		modify func(k *v1.OwnedAccessKey)
		want   []wantErr
	}{
		{"valid: unchanged", func(k *v1.OwnedAccessKey) {}, nil},
		{"valid: disable, describe, rescope", func(k *v1.OwnedAccessKey) {
			k.Spec.Disabled, k.Spec.Description = true, "rotated away"
			k.Spec.Scope = &v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "demo"}}}
			k.Labels = map[string]string{"team": "ci"}
		}, nil},

		{"a long key may not be set either", func(k *v1.OwnedAccessKey) { k.Spec.Key = longKey }, []wantErr{{field.ErrorTypeForbidden, "spec.key"}}},
		{"a short key is refused once, as a change", func(k *v1.OwnedAccessKey) { k.Spec.Key = "short" }, []wantErr{{field.ErrorTypeForbidden, "spec.key"}}},
		{"name is immutable", func(k *v1.OwnedAccessKey) { k.Name = "other" }, []wantErr{{field.ErrorTypeInvalid, "metadata.name"}}},
		{"uid is immutable", func(k *v1.OwnedAccessKey) { k.UID = "uid-2" }, []wantErr{{field.ErrorTypeInvalid, "metadata.uid"}}},
		{"creationTimestamp is immutable", func(k *v1.OwnedAccessKey) {
			k.CreationTimestamp = metav1.NewTime(created.Add(3600e9))
		}, []wantErr{{field.ErrorTypeInvalid, "metadata.creationTimestamp"}}},
		{"create rules apply: both user and team", func(k *v1.OwnedAccessKey) { k.Spec.Team = "platform" }, []wantErr{{field.ErrorTypeInvalid, "spec.user"}}},
		{"create rules apply: negative ttl", func(k *v1.OwnedAccessKey) { k.Spec.TTL = -1 }, []wantErr{{field.ErrorTypeInvalid, "spec.ttl"}}},
		{"create rules apply: unknown type", func(k *v1.OwnedAccessKey) { k.Spec.Type = "Robot" }, []wantErr{{field.ErrorTypeNotSupported, "spec.type"}}},
		{"create rules apply: scope", func(k *v1.OwnedAccessKey) {
			k.Spec.Scope = &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{NonResourceURLs: []string{"healthz"}}}}
		}, []wantErr{{field.ErrorTypeInvalid, "spec.scope.rules[0].nonResourceURLs[0]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newK := old()
			tt.modify(newK)
			checkErrors(t, ValidateOwnedAccessKeyUpdate(newK, old()), tt.want)
		})
	}
}

func TestKeyChangeMessage(t *testing.T) {
	k := validKey()
	k.Spec.Key = longKey
	errs := ValidateOwnedAccessKeyUpdate(k, validKey())
	msg := errs.ToAggregate().Error()
	if !strings.Contains(msg, "the key of an existing access key cannot be changed; create a new key") {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, longKey) {
		t.Errorf("message %q repeats the key", msg)
	}
}
