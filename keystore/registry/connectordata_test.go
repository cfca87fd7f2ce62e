package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

const sealedRT = "sealed.v1.0000.the-idps-refresh-token"

// noConnectorData fails when obj (a key or a list) carries spec.identity.connectorData.
func noConnectorData(t *testing.T, what string, obj runtime.Object) {
	t.Helper()
	var ks []v1.OwnedAccessKey
	switch o := obj.(type) {
	case *v1.OwnedAccessKey:
		ks = []v1.OwnedAccessKey{*o}
	case *v1.OwnedAccessKeyList:
		ks = o.Items
	default:
		t.Fatalf("%s: %T", what, obj)
	}
	for _, k := range ks {
		if k.Spec.Identity != nil && len(k.Spec.Identity.ConnectorData) > 0 {
			t.Errorf("%s serves connectorData of %s", what, k.Name)
		}
	}
}

// TestConnectorDataIsNeverServed: the management API strips an SSO key's connectorData from
// get, list, watch and the answers of update and delete, as it never serves spec.key; an update
// keeps it (the client never saw it) and the identity the IdP gave; a client cannot set it.
func TestConnectorDataIsNeverServed(t *testing.T) {
	ctx := context.Background()
	f := newWidenFixture()
	name := fmt.Sprintf("sso-key-%d", time.Now().UnixNano())
	ident := &v1.AccessKeyIdentity{UserID: "sub-1", Username: "okta:sue", Groups: []string{"dev"}, Connector: "okta", ConnectorData: []byte(sealedRT)}
	refreshed := metav1.NewTime(time.Now().Truncate(time.Second))
	if _, _, err := keys.CreateObject(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.OwnedAccessKeySpec{User: "okta:sue", Type: v1.AccessKeyTypeLogin, TTL: 3600, Groups: []string{"dev"}, Identity: ident, IdentityRefresh: &refreshed}}); err != nil {
		t.Fatal(err)
	}
	sue := as("okta:sue", name, "dev")

	w, err := f.a.Watch(sue, &metainternalversion.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	got, err := f.a.Get(sue, name, &metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noConnectorData(t, "get", got)
	list, err := f.a.List(sue, &metainternalversion.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noConnectorData(t, "list", list)

	// The client edits what it got (no connectorData) and tries to change the identity.
	edit := got.(*v1.OwnedAccessKey).DeepCopy()
	edit.Spec.DisplayName = "my laptop"
	edit.Spec.Identity.Groups = []string{"dev", "keygate:admins"}
	edit.Spec.Identity.ConnectorData = []byte("sealed.v1.forged")
	out, _, err := f.a.Update(sue, name, rest.DefaultUpdatedObjectInfo(edit), nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noConnectorData(t, "update's answer", out)
	stored, err := keys.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if string(stored.Spec.Identity.ConnectorData) != sealedRT || len(stored.Spec.Identity.Groups) != 1 || stored.Spec.DisplayName != "my laptop" {
		t.Fatalf("after the update: identity %+v, display name %q", stored.Spec.Identity, stored.Spec.DisplayName)
	}
	watchedWithout(t, w, 2) // ADDED, then MODIFIED
	del, _, err := f.a.Delete(sue, name, nil, &metav1.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noConnectorData(t, "delete's answer", del)
}

// watchedWithout reads n events of w, none with connectorData.
func watchedWithout(t *testing.T, w watch.Interface, n int) {
	t.Helper()
	for range n {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Error {
				t.Fatalf("watch: %v", ev.Object)
			}
			noConnectorData(t, "watch "+string(ev.Type), ev.Object)
		case <-time.After(5 * time.Second):
			t.Fatal("no watch event")
		}
	}
}

// TestClientsCannotSetConnectorData: a client's own key cannot carry connectorData, which
// would make it look like an SSO key to the identity refresh.
func TestClientsCannotSetConnectorData(t *testing.T) {
	f := newWidenFixture()
	name := fmt.Sprintf("own-key-%d", time.Now().UnixNano())
	holder := f.hold(t, "own-holder", v1.OwnedAccessKeySpec{User: "okta:sue"})
	created, err := f.a.Create(as("okta:sue", holder), &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.OwnedAccessKeySpec{User: "okta:sue", Identity: &v1.AccessKeyIdentity{Connector: "okta", ConnectorData: []byte("sealed.v1.forged")}}}, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noConnectorData(t, "create's answer", created)
	if own, err := keys.Get(context.Background(), name); err != nil || len(own.Spec.Identity.ConnectorData) != 0 {
		t.Fatalf("a client set connectorData: %+v %v", own, err)
	}
}
