package registry

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// teamFixture is an admin, two users and the storages, with the members' teams read from the
// user store as the server does.
type teamFixture struct {
	teams      *Teams
	admin      context.Context
	ann, bob   string
	teamsOfAnn func() []string
}

func newTeamFixture(t *testing.T) teamFixture {
	t.Helper()
	opts := Options{AdminGroup: "admins", Teams: func(ctx context.Context, name string) ([]string, error) {
		u, err := people.Get(ctx, name)
		if err != nil {
			return nil, nil
		}
		return u.Teams, nil
	}}
	u := NewUsers(people, keys, opts)
	f := teamFixture{teams: NewTeams(teamRecs, people, keys, opts), admin: callerWithKey(t, "root", nil, "admins"), ann: uniqueUser("ann"), bob: uniqueUser("bob")}
	for _, n := range []string{f.ann, f.bob} {
		if _, err := u.Create(f.admin, newUser(n), nil, &metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.teamsOfAnn = func() []string {
		got, err := people.Get(context.Background(), f.ann)
		if err != nil {
			t.Fatal(err)
		}
		return got.Teams
	}
	return f
}

// A team's spec.users is the users' membership: creating, changing and deleting a team writes
// it to each user's record, which the edge and `keystore get-user` read.
func TestTeamMembersAreWrittenToUsers(t *testing.T) {
	f := newTeamFixture(t)
	name := uniqueUser("team")
	in := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.TeamSpec{DisplayName: "Platform", Users: []string{f.ann}, Groups: []string{"platform"}}}
	if _, err := f.teams.Create(f.admin, in, nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.teamsOfAnn(), name) {
		t.Errorf("ann's teams after the team's create: %v, want %s", f.teamsOfAnn(), name)
	}
	obj, err := f.teams.Get(f.admin, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur := obj.(*v1.Team)
	cur.Spec.Users = []string{f.bob}
	out, _, err := f.teams.Update(f.admin, name, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*v1.Team).Spec.Users; !slices.Equal(got, []string{f.bob}) || slices.Contains(f.teamsOfAnn(), name) {
		t.Errorf("after replacing ann by bob: users %v, ann's teams %v", got, f.teamsOfAnn())
	}
	if _, _, err := f.teams.Delete(f.admin, name, nil, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if bob, _ := people.Get(context.Background(), f.bob); slices.Contains(bob.Teams, name) {
		t.Errorf("bob's teams after the team's delete: %v", bob.Teams)
	}
}

// Members read their team; anyone else gets NotFound; only an admin's unscoped key writes; an
// unknown member is a 422 naming spec.users[i].
func TestTeamsAuthorizationAndValidation(t *testing.T) {
	f := newTeamFixture(t)
	name := uniqueUser("team")
	in := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.TeamSpec{Users: []string{f.ann}}}
	if _, err := f.teams.Create(f.admin, in, nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ann, bob := callerWithKey(t, f.ann, nil), callerWithKey(t, f.bob, nil)
	if _, err := f.teams.Get(ann, name, nil); err != nil {
		t.Errorf("a member reads the team: %v", err)
	}
	if _, err := f.teams.Get(bob, name, nil); !apierrors.IsNotFound(err) {
		t.Errorf("a non-member reads the team: %v, want NotFound", err)
	}
	if list, err := f.teams.List(bob, nil); err != nil || slices.ContainsFunc(list.(*v1.TeamList).Items, func(t v1.Team) bool { return t.Name == name }) {
		t.Errorf("a non-member's list: %v, %v; want without %s", list, err, name)
	}
	other := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: uniqueUser("team")}}
	if _, err := f.teams.Create(ann, other, nil, &metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a member creates a team: %v, want Forbidden", err)
	}
	if _, _, err := f.teams.Delete(ann, name, nil, &metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a member deletes their team: %v, want Forbidden", err)
	}
	unknown := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: uniqueUser("team")}, Spec: v1.TeamSpec{Users: []string{f.ann, "nobody-here"}}}
	if _, err := f.teams.Create(f.admin, unknown, nil, &metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.users[1]") {
		t.Errorf("a team with an unknown user: %v, want 422 naming spec.users[1]", err)
	}
	badGroup := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: uniqueUser("team")}, Spec: v1.TeamSpec{Groups: []string{"loft:team:x"}}}
	if _, err := f.teams.Create(f.admin, badGroup, nil, &metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.groups[0]") {
		t.Errorf("a team with a reserved group: %v, want 422 naming spec.groups[0]", err)
	}
}

// failingUpdates is the user store with Update failing for one user, as a Redis that drops
// the connection half-way through a team's membership writes.
type failingUpdates struct {
	UserStore
	failFor string
}

func (f *failingUpdates) Update(ctx context.Context, name string, mutate func(u *users.User) error) (*users.User, error) {
	if name == f.failFor {
		return nil, errors.New("connection reset by peer")
	}
	return f.UserStore.Update(ctx, name, mutate)
}

// A team's delete that cannot update every member leaves the team in place, to be retried; it
// never leaves a member holding a team that no longer exists (which a team of the same name,
// created later, would then count among its members).
func TestTeamDeleteHalfWayIsRetried(t *testing.T) {
	f := newTeamFixture(t)
	flaky := &failingUpdates{UserStore: people}
	teams := NewTeams(teamRecs, flaky, keys, Options{AdminGroup: "admins"})
	name := uniqueUser("team")
	in := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.TeamSpec{Users: []string{f.ann, f.bob}}}
	if _, err := teams.Create(f.admin, in, nil, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	teamsOf := func(user string) []string {
		u, err := people.Get(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		return u.Teams
	}

	flaky.failFor = f.bob
	if _, _, err := teams.Delete(f.admin, name, nil, &metav1.DeleteOptions{}); !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("delete while bob's record cannot be written: %v, want a 500 that says to retry", err)
	}
	if _, err := teams.Get(f.admin, name, nil); err != nil {
		t.Fatalf("the team after a half-way delete: %v, want it still there to retry the delete", err)
	}

	flaky.failFor = ""
	if _, _, err := teams.Delete(f.admin, name, nil, &metav1.DeleteOptions{}); err != nil {
		t.Fatalf("the retried delete: %v", err)
	}
	for _, u := range []string{f.ann, f.bob} {
		if slices.Contains(teamsOf(u), name) {
			t.Errorf("%s's teams after the team's delete: %v, want it gone", u, teamsOf(u))
		}
	}
	if _, err := teams.Get(f.admin, name, nil); !apierrors.IsNotFound(err) {
		t.Errorf("the team after the retried delete: %v, want NotFound", err)
	}
}
