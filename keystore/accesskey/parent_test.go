package accesskey

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestFollowParent(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	session := func(mod func(*v1.OwnedAccessKey)) *v1.OwnedAccessKey {
		k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{
			User: "idp:alice", Groups: []string{"dev"}, TTL: 3600, Type: v1.AccessKeyTypeLogin,
			Identity: &v1.AccessKeyIdentity{UserID: "sub-alice", Username: "idp:alice", Groups: []string{"dev"}, Connector: "idp", ConnectorData: []byte("sealed")},
		}}
		k.Name, k.CreationTimestamp = "login-alice-a", metav1.NewTime(created)
		if mod != nil {
			mod(k)
		}
		return k
	}
	child := func(after time.Duration, mod func(*v1.OwnedAccessKey)) *v1.OwnedAccessKey {
		k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: "idp:alice", TTL: 3600, Type: v1.AccessKeyTypeLogin, Parent: "login-alice-a"}}
		k.Name, k.CreationTimestamp = "login-alice-b", metav1.NewTime(created.Add(after))
		if mod != nil {
			mod(k)
		}
		return k
	}
	inStep := func(k *v1.OwnedAccessKey) {
		k.Spec.Groups = []string{"dev"}
		k.Spec.Identity = &v1.AccessKeyIdentity{UserID: "sub-alice", Username: "idp:alice", Groups: []string{"dev"}, Connector: "idp"}
	}
	disabledBy := func(why string) func(*v1.OwnedAccessKey) {
		return func(k *v1.OwnedAccessKey) {
			k.Spec.Disabled = true
			k.Annotations = map[string]string{DisabledByAnnotation: DisabledByParent, ParentStateAnnotation: why}
		}
	}
	both := func(fs ...func(*v1.OwnedAccessKey)) func(*v1.OwnedAccessKey) {
		return func(k *v1.OwnedAccessKey) {
			for _, f := range fs {
				f(k)
			}
		}
	}
	for name, tc := range map[string]struct {
		child, parent, want *v1.OwnedAccessKey
	}{
		"a new child takes the session's identity, never its connectorData, and lives no longer": {
			child: child(10*time.Minute, nil), parent: session(nil),
			want: child(10*time.Minute, both(inStep, func(k *v1.OwnedAccessKey) { k.Spec.TTL = 3000 })),
		},
		"the session's new groups reach the child": {
			child:  child(0, inStep),
			parent: session(func(k *v1.OwnedAccessKey) { k.Spec.Groups, k.Spec.Identity.Groups = []string{"ops"}, []string{"ops"} }),
			want: child(0, both(inStep, func(k *v1.OwnedAccessKey) {
				k.Spec.Groups, k.Spec.Identity.Groups = []string{"ops"}, []string{"ops"}
			})),
		},
		"a disabled session disables the child": {
			child: child(0, inStep), parent: session(func(k *v1.OwnedAccessKey) { k.Spec.Disabled = true }),
			want: child(0, both(inStep, disabledBy(parentDisabledMessage))),
		},
		"a session enabled again enables the child it disabled": {
			child: child(0, both(inStep, disabledBy(parentDisabledMessage))), parent: session(nil),
			want: child(0, inStep),
		},
		"a child someone else disabled stays disabled": {
			child: child(0, both(inStep, func(k *v1.OwnedAccessKey) {
				k.Spec.Disabled, k.Annotations = true, map[string]string{DisabledByAnnotation: "admin"}
			})),
			parent: session(nil),
			want: child(0, both(inStep, func(k *v1.OwnedAccessKey) {
				k.Spec.Disabled, k.Annotations = true, map[string]string{DisabledByAnnotation: "admin"}
			})),
		},
		"a shortened session shortens the child": {
			child: child(0, inStep), parent: session(func(k *v1.OwnedAccessKey) { k.Spec.TTL = 60 }),
			want: child(0, both(inStep, func(k *v1.OwnedAccessKey) { k.Spec.TTL = 60 })),
		},
		"a child past the session's end is disabled, not made eternal": {
			child: child(2*time.Hour, inStep), parent: session(nil),
			want: child(2*time.Hour, both(inStep, disabledBy(parentOutlivedMessage), func(k *v1.OwnedAccessKey) { k.Spec.TTL = 1 })),
		},
		"an eternal child of a session with a ttl gets the session's end": {
			child: child(0, both(inStep, func(k *v1.OwnedAccessKey) { k.Spec.TTL = 0; k.Spec.TTLAfterLastActivity = true })), parent: session(nil),
			want: child(0, inStep),
		},
		"the child acts as the session's user": {
			child: child(0, both(inStep, func(k *v1.OwnedAccessKey) { k.Spec.User = "idp:mallory" })), parent: session(nil),
			want: child(0, inStep),
		},
	} {
		t.Run(name, func(t *testing.T) {
			before := tc.child.DeepCopy()
			changed := FollowParent(tc.child, tc.parent)
			if d := cmp.Diff(tc.want, tc.child, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("child (-want +got):\n%s", d)
			}
			if want := cmp.Diff(before, tc.want, cmpopts.EquateEmpty()) != ""; changed != want {
				t.Errorf("FollowParent reported changed=%v, want %v", changed, want)
			}
			if tc.parent.Spec.Identity.ConnectorData == nil {
				t.Error("the parent's connectorData was taken")
			}
		})
	}
}
