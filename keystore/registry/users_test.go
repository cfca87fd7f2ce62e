package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// callerWithKey is a request context of name with groups, made with a new key of that user
// with scope (nil: unscoped).
func callerWithKey(t *testing.T, name string, scope *v1.AccessKeyScope, groups ...string) context.Context {
	t.Helper()
	key := fmt.Sprintf("%s-key-%d", name, time.Now().UnixNano())
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: key}, Spec: v1.OwnedAccessKeySpec{User: name, Scope: scope}}
	if _, err := keys.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return as(name, key, groups...)
}

func uniqueUser(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func newUser(name string) *v1.User {
	return &v1.User{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.UserSpec{Email: name + "@example.com", Groups: []string{"dev"}}}
}

// An admin writes users; whatever server fields the client sends, the server sets its own.
func TestUsersAdminCreatesWithServerFields(t *testing.T) {
	s := NewUsers(people, keys, Options{AdminGroup: "admins"})
	admin := callerWithKey(t, "root", nil, "admins")
	name := uniqueUser("ann")
	in := newUser(name)
	in.UID, in.CreationTimestamp, in.Generation = "client-uid", metav1.NewTime(time.Now().Add(-24*time.Hour)), 7
	in.Status.Teams = []string{"sneaky"}
	obj, err := s.Create(admin, in, nil, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := obj.(*v1.User)
	if u.UID == "client-uid" || u.UID == "" || time.Since(u.CreationTimestamp.Time) > time.Minute || u.Generation != 1 || len(u.Status.Teams) != 0 {
		t.Errorf("created user keeps client fields: uid %q, created %v, generation %d, teams %v", u.UID, u.CreationTimestamp, u.Generation, u.Status.Teams)
	}
	if u.Spec.Username != name || u.Spec.Subject != name {
		t.Errorf("username %q, subject %q; want the name %q", u.Spec.Username, u.Spec.Subject, name)
	}
	// An update from a stale read is a conflict, not a silent overwrite.
	stale := u.DeepCopy()
	u.Spec.DisplayName = "Ann"
	if _, _, err := s.Update(admin, name, rest.DefaultUpdatedObjectInfo(u), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Spec.Email = "other@example.com"
	if _, _, err := s.Update(admin, name, rest.DefaultUpdatedObjectInfo(stale), nil, nil, false, &metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update from a stale read: %v, want Conflict", err)
	}
}

// A non-admin reads only themselves: another user is NotFound (existence does not leak), a list
// holds only them, and every write is Forbidden, to themselves too. An admin's scoped key writes
// no user.
func TestUsersAuthorization(t *testing.T) {
	s := NewUsers(people, keys, Options{AdminGroup: "admins"})
	admin := callerWithKey(t, "root", nil, "admins")
	self, other := uniqueUser("self"), uniqueUser("other")
	for _, n := range []string{self, other} {
		if _, err := s.Create(admin, newUser(n), nil, &metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	me := callerWithKey(t, self, nil, "dev")
	if _, err := s.Get(me, self, nil); err != nil {
		t.Errorf("get self: %v", err)
	}
	if _, err := s.Get(me, other, nil); !apierrors.IsNotFound(err) {
		t.Errorf("get another user: %v, want NotFound", err)
	}
	list, err := s.List(me, nil)
	if err != nil || len(list.(*v1.UserList).Items) != 1 || list.(*v1.UserList).Items[0].Name != self {
		t.Errorf("a non-admin's list: %v, %v; want only themselves", list, err)
	}
	cur, _ := s.Get(admin, self, nil)
	writes := map[string]func(ctx context.Context) error{
		"create": func(ctx context.Context) error {
			_, err := s.Create(ctx, newUser(uniqueUser("new")), nil, &metav1.CreateOptions{})
			return err
		},
		"update": func(ctx context.Context) error {
			_, _, err := s.Update(ctx, self, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{})
			return err
		},
		"delete": func(ctx context.Context) error {
			_, _, err := s.Delete(ctx, other, nil, &metav1.DeleteOptions{})
			return err
		},
	}
	scoped := callerWithKey(t, "root", &v1.AccessKeyScope{Projects: []v1.AccessKeyScopeProject{{Project: "p"}}}, "admins")
	for verb, write := range writes {
		if err := write(me); !apierrors.IsForbidden(err) {
			t.Errorf("non-admin %s: %v, want Forbidden", verb, err)
		}
		if err := write(scoped); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "is scoped") {
			t.Errorf("admin's scoped key %s: %v, want Forbidden", verb, err)
		}
	}
}

// Validation answers 422 naming the field.
func TestUsersValidation(t *testing.T) {
	s := NewUsers(people, keys, Options{AdminGroup: "admins"})
	admin := callerWithKey(t, "root", nil, "admins")
	for field, mutate := range map[string]func(u *v1.User){
		"metadata.name":    func(u *v1.User) { u.Name = "Not_A_Label" },
		"spec.email":       func(u *v1.User) { u.Spec.Email = "not an email" },
		"spec.groups[0]":   func(u *v1.User) { u.Spec.Groups = []string{"system:masters"} },
		"spec.groups[1]":   func(u *v1.User) { u.Spec.Groups = []string{"dev", ""} },
		"spec.username":    func(u *v1.User) { u.Spec.Username = "someone-else" },
		"spec.displayName": func(u *v1.User) { u.Spec.DisplayName = "bell\a" },
	} {
		u := newUser(uniqueUser("bad"))
		mutate(u)
		_, err := s.Create(admin, u, nil, &metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want 422 naming it", field, err)
		}
	}
}

// A watch from a list's resourceVersion sees later changes to the users the caller may read,
// and nobody else's.
func TestUsersWatch(t *testing.T) {
	s := NewUsers(people, keys, Options{AdminGroup: "admins"})
	admin := callerWithKey(t, "root", nil, "admins")
	self, other := uniqueUser("wself"), uniqueUser("wother")
	if _, err := s.Create(admin, newUser(self), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	me := callerWithKey(t, self, nil)
	list, err := s.List(me, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(me)
	defer cancel()
	w, err := s.Watch(ctx, &metainternalversion.ListOptions{ResourceVersion: list.(*v1.UserList).ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Create(admin, newUser(other), nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Get(admin, self, nil)
	cur.(*v1.User).Spec.DisplayName = "Watched"
	if _, _, err := s.Update(admin, self, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := <-w.ResultChan()
	if u, ok := ev.Object.(*v1.User); ev.Type != watch.Modified || !ok || u.Name != self || u.Spec.DisplayName != "Watched" {
		t.Errorf("first event: %s %+v; want MODIFIED of %s (the other user's creation unseen)", ev.Type, ev.Object, self)
	}
}
