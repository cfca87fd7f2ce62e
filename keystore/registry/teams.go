package registry

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/teams"
	"github.com/keygate-dev/keygate/keystore/users"
)

// TeamStore is the team store (teams.Store in production).
type TeamStore interface {
	Create(ctx context.Context, t teams.Team) (*teams.Team, error)
	Get(ctx context.Context, name string) (*teams.Team, error)
	ListWithVersion(ctx context.Context) ([]*teams.Team, string, error)
	Update(ctx context.Context, t teams.Team, expect string) (*teams.Team, error)
	Delete(ctx context.Context, name, expect string) (*teams.Team, error)
	Watch(ctx context.Context, version string, handle func(teams.Event) error) error
}

var teamResource = v1.Resource("teams")
var teamKind = v1.SchemeGroupVersion.WithKind("Team").GroupKind()

// Teams serves teams: admins read and write every team, members (and the team's own keys) read
// their team, nobody else sees it. A team's spec.users is read from the users' records, and
// writing it changes them (teams_write.go): membership has one home, the user store.
type Teams struct {
	store  TeamStore
	people UserStore
	id     identity
	rest.TableConvertor
}

// NewTeams returns the storage of teams.
func NewTeams(store TeamStore, people UserStore, keys Keys, opts Options) *Teams {
	return &Teams{store: store, people: people, id: identity{keys: keys, opts: opts, resource: teamResource}, TableConvertor: teamTable{}}
}

var (
	_ rest.Storage              = &Teams{}
	_ rest.Scoper               = &Teams{}
	_ rest.SingularNameProvider = &Teams{}
	_ rest.Creater              = &Teams{}
	_ rest.Getter               = &Teams{}
	_ rest.Lister               = &Teams{}
	_ rest.Updater              = &Teams{}
	_ rest.GracefulDeleter      = &Teams{}
	_ rest.Watcher              = &Teams{}
)

func (*Teams) New() runtime.Object     { return &v1.Team{} }
func (*Teams) NewList() runtime.Object { return &v1.TeamList{} }
func (*Teams) Destroy()                {}
func (*Teams) NamespaceScoped() bool   { return false }
func (*Teams) GetSingularName() string { return "team" }

// teamObject is the API object of a stored team with its members.
func teamObject(t *teams.Team, members []string) *v1.Team {
	out := &v1.Team{
		ObjectMeta: metav1.ObjectMeta{
			Name: t.Name, UID: types.UID(t.UID), CreationTimestamp: metav1.NewTime(t.CreationTimestamp),
			ResourceVersion: t.Version, Generation: max(t.Generation, 1), Labels: t.Labels, Annotations: t.Annotations,
		},
		Spec: v1.TeamSpec{DisplayName: t.DisplayName, Description: t.Description, Users: members, Groups: t.Groups},
	}
	if len(t.ManagedFields) > 0 {
		_ = json.Unmarshal(t.ManagedFields, &out.ManagedFields) // written by teamRecord
	}
	return out
}

// teamRecord is the stored record of a team object (its members are stored on the users).
func teamRecord(t *v1.Team) (teams.Team, error) {
	rec := teams.Team{
		Name: t.Name, DisplayName: t.Spec.DisplayName, Description: t.Spec.Description, Groups: t.Spec.Groups,
		Generation: t.Generation, Labels: t.Labels, Annotations: t.Annotations,
	}
	if len(t.ManagedFields) > 0 {
		data, err := json.Marshal(t.ManagedFields)
		if err != nil {
			return rec, err
		}
		rec.ManagedFields = data
	}
	return rec, nil
}

// memberIndex is every team's members, from one read of the user store, sorted.
func (s *Teams) memberIndex(ctx context.Context) (map[string][]string, error) {
	all, _, err := s.people.ListWithVersion(ctx)
	if err != nil {
		return nil, err
	}
	index := map[string][]string{}
	for _, u := range all {
		for _, t := range u.Teams {
			index[t] = append(index[t], u.Name)
		}
	}
	for _, m := range index {
		slices.Sort(m)
	}
	return index, nil
}

// get returns the team named name if c may read it; any other is "not found".
func (s *Teams) get(ctx context.Context, c Caller, name string) (*v1.Team, error) {
	if !c.MayReadTeam(name) {
		return nil, apierrors.NewNotFound(teamResource, name)
	}
	t, err := s.store.Get(ctx, name)
	if errors.Is(err, teams.ErrNotFound) {
		return nil, apierrors.NewNotFound(teamResource, name)
	}
	if err != nil {
		return nil, storeError(err)
	}
	index, err := s.memberIndex(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	return teamObject(t, index[name]), nil
}

// Get returns one team with its members.
func (s *Teams) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, c, name)
}

// List returns the teams c may read, filtered by label and field selectors (metadata.name).
func (s *Teams) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	objs, rv, err := s.visibleTeams(ctx, c, options)
	if err != nil {
		return nil, err
	}
	list := &v1.TeamList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []v1.Team{}}
	for _, o := range objs {
		list.Items = append(list.Items, *o.(*v1.Team))
	}
	return list, nil
}

// visibleTeams are the teams c may read that options select, and the version they are at.
func (s *Teams) visibleTeams(ctx context.Context, c Caller, options *metainternalversion.ListOptions) ([]runtime.Object, string, error) {
	match, err := metaMatcher(options)
	if err != nil {
		return nil, "", err
	}
	all, rv, err := s.store.ListWithVersion(ctx)
	if err != nil {
		return nil, "", storeError(err)
	}
	index, err := s.memberIndex(ctx)
	if err != nil {
		return nil, "", storeError(err)
	}
	var out []runtime.Object
	for _, t := range all {
		if o := teamObject(t, index[t.Name]); c.MayReadTeam(t.Name) && match(&o.ObjectMeta) {
			out = append(out, o)
		}
	}
	return out, rv, nil
}

// setMembers makes exactly want the members of team, writing each user whose membership
// changes (each write is a user event, so the edge follows at once).
func (s *Teams) setMembers(ctx context.Context, team string, want []string) error {
	all, _, err := s.people.ListWithVersion(ctx)
	if err != nil {
		return err
	}
	for _, u := range all {
		has, should := slices.Contains(u.Teams, team), slices.Contains(want, u.Name)
		if has == should {
			continue
		}
		_, err := s.people.Update(ctx, u.Name, func(u *users.User) error {
			u.Teams = slices.DeleteFunc(u.Teams, func(t string) bool { return t == team })
			if should {
				u.Teams = append(u.Teams, team)
			}
			return nil
		})
		if err != nil && !errors.Is(err, users.ErrNotFound) {
			return err
		}
	}
	return nil
}
