package faultload

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// KeySet is the keys of the traffic, one per kind of right answer.
type KeySet struct {
	Probes []*Probe
	// Deleted and Disabled are revoked while the fault runs its course; their names are the
	// objects to delete and disable.
	Deleted, Disabled         *Revocation
	DeletedName, DisabledName string
}

// NewKeySet creates the keys in the store and returns their probes.
func NewKeySet(t *testing.T) *KeySet {
	t.Helper()
	scope := &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{NonResourceURLs: []string{"/version"}}}}
	_, allowed := NewKey(t, "allowed", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	_, scoped := NewKey(t, "scoped", v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: scope})
	_, disabled := NewKey(t, "disabled", v1.OwnedAccessKeySpec{User: localdev.AdminUser, Disabled: true})
	s := &KeySet{Deleted: &Revocation{}, Disabled: &Revocation{}}
	var toDelete, toDisable string
	s.DeletedName, toDelete = NewKey(t, "deleted", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	s.DisabledName, toDisable = NewKey(t, "disabled-later", v1.OwnedAccessKeySpec{User: localdev.AdminUser})
	s.Probes = []*Probe{
		{Name: "allowed", Key: allowed, Path: DemoPath + "/version"},
		{Name: "scoped, in scope", Key: scoped, Path: DemoPath + "/version"},
		{Name: "scoped, out of scope", Key: scoped, Path: DemoPath + "/api/v1/namespaces", Refuse: true},
		{Name: "unknown", Key: "unknown-" + rand.Text(), Path: DemoPath + "/version", Refuse: true},
		{Name: "disabled", Key: disabled, Path: DemoPath + "/version", Refuse: true},
		{Name: "deleted during the run", Key: toDelete, Path: DemoPath + "/version", Revoked: s.Deleted},
		{Name: "disabled during the run", Key: toDisable, Path: DemoPath + "/version", Revoked: s.Disabled},
	}
	return s
}

// NewKey creates an access key in the store, as keystore would, and returns its name and key.
func NewKey(t *testing.T, prefix string, spec v1.OwnedAccessKeySpec) (name, key string) {
	t.Helper()
	return NewKeyAt(t, prefix, time.Time{}, spec)
}

// NewKeyAt is NewKey with the key's creation time set to created (zero: now), as keystore's
// clock would have stamped it then.
func NewKeyAt(t *testing.T, prefix string, created time.Time, spec v1.OwnedAccessKeySpec) (name, key string) {
	t.Helper()
	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "faults-" + prefix + "-" + strings.ToLower(rand.Text()[:8])}, Spec: spec}
	if !created.IsZero() {
		obj.CreationTimestamp = metav1.NewTime(created.UTC())
	}
	key, err := Keys.Create(context.Background(), obj)
	if err != nil {
		t.Fatalf("create access key: %v", err)
	}
	return obj.Name, key
}
