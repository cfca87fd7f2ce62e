package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// A client that dates a key ahead, or sends a uid, status or the edge's annotations, gets the
// server's values: a key with a short ttl expires on the server's clock.
func TestCreateIgnoresServerFields(t *testing.T) {
	f := newWidenFixture()
	holder := f.hold(t, "strategy-holder", v1.OwnedAccessKeySpec{User: "alice"})
	future := metav1.NewTime(time.Now().Add(365 * 24 * time.Hour))
	obj := &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("dated-ahead-%d", time.Now().UnixNano()), CreationTimestamp: future, UID: "client-uid", Generation: 7,
			Annotations: map[string]string{CreatedByAnnotation: "someone-else"},
		},
		Spec:   v1.OwnedAccessKeySpec{User: "alice", TTL: 60},
		Status: v1.OwnedAccessKeyStatus{LastActivity: &future},
	}
	before := time.Now().Add(-time.Second)
	out, err := f.a.Create(as("alice", holder), obj, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := out.(*v1.OwnedAccessKey)
	stored, err := keys.Get(context.Background(), k.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*v1.OwnedAccessKey{k, stored} {
		if got.CreationTimestamp.After(time.Now()) || got.CreationTimestamp.Time.Before(before.Truncate(time.Second)) {
			t.Errorf("creationTimestamp %v, want the server's time", got.CreationTimestamp)
		}
		if got.UID == "client-uid" || got.UID == "" || got.Generation != 1 || got.Annotations[CreatedByAnnotation] != "alice" || got.Status.LastActivity != nil {
			t.Errorf("uid %q, generation %d, annotations %v, status %+v", got.UID, got.Generation, got.Annotations, got.Status)
		}
	}
	if !accesskey.Expired(stored, time.Now().Add(2*time.Minute), 0) {
		t.Errorf("a 60 s key is not expired 2 minutes from now: created %v", stored.CreationTimestamp)
	}
}

func TestUpdateKeepsServerFields(t *testing.T) {
	f := newWidenFixture()
	alice := as("alice", f.hold(t, "strategy-updater", v1.OwnedAccessKeySpec{User: "alice"}))
	out, err := f.a.Create(alice, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("strategy-update-%d", time.Now().UnixNano())}, Spec: v1.OwnedAccessKeySpec{User: "alice", TTL: 60}}, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig := out.(*v1.OwnedAccessKey)
	err = f.update(t, alice, orig.Name, func(k *v1.OwnedAccessKey) {
		k.CreationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
		k.UID = "client-uid"
		k.Generation = 42
		k.Annotations = map[string]string{"mine": "kept"}
		k.Spec.DisplayName = "renamed"
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Get(context.Background(), orig.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreationTimestamp.Equal(&orig.CreationTimestamp) || got.UID != orig.UID || got.Generation != 2 {
		t.Errorf("creationTimestamp %v (was %v), uid %q (was %q), generation %d (want 2)", got.CreationTimestamp, orig.CreationTimestamp, got.UID, orig.UID, got.Generation)
	}
	if got.Annotations[CreatedByAnnotation] != "alice" || got.Annotations["mine"] != "kept" {
		t.Errorf("annotations %v: want created-by kept and the client's own annotation", got.Annotations)
	}
	if err := f.update(t, alice, orig.Name, func(k *v1.OwnedAccessKey) { k.Labels = map[string]string{"a": "b"} }); err != nil {
		t.Fatal(err)
	}
	if got, _ := keys.Get(context.Background(), orig.Name); got.Generation != 2 {
		t.Errorf("generation %d after a metadata-only change, want 2", got.Generation)
	}
}
