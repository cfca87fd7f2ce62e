package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// UserStore is the user store (users.Store in production).
type UserStore interface {
	Get(ctx context.Context, name string) (*users.User, error)
	ListWithVersion(ctx context.Context) ([]*users.User, string, error)
	CreateWithoutPassword(ctx context.Context, u users.User) (*users.User, error)
	Update(ctx context.Context, name string, mutate func(u *users.User) error) (*users.User, error)
	DeleteIf(ctx context.Context, name string, check func(u *users.User) error) (*users.User, error)
	Watch(ctx context.Context, version string, handle func(users.Event) error) error
}

var userResource = v1.Resource("users")
var userKind = v1.SchemeGroupVersion.WithKind("User").GroupKind()

// Users serves users: admins read and write every user, anyone else reads only themselves
// (another user is "not found") and writes none.
type Users struct {
	store UserStore
	id    identity
	rest.TableConvertor
}

// NewUsers returns the storage of users. keys finds the access key of a request, whose scope
// decides whether it may write identities at all (identity.go).
func NewUsers(store UserStore, keys Keys, opts Options) *Users {
	return &Users{store: store, id: identity{keys: keys, opts: opts, resource: userResource}, TableConvertor: userTable{}}
}

var (
	_ rest.Storage              = &Users{}
	_ rest.Scoper               = &Users{}
	_ rest.SingularNameProvider = &Users{}
	_ rest.Creater              = &Users{}
	_ rest.Getter               = &Users{}
	_ rest.Lister               = &Users{}
	_ rest.Updater              = &Users{}
	_ rest.GracefulDeleter      = &Users{}
	_ rest.Watcher              = &Users{}
)

func (*Users) New() runtime.Object     { return &v1.User{} }
func (*Users) NewList() runtime.Object { return &v1.UserList{} }
func (*Users) Destroy()                {}
func (*Users) NamespaceScoped() bool   { return false }
func (*Users) GetSingularName() string { return "user" }

// userObject is the API object of a stored user. Its resourceVersion is the record's revision.
func userObject(u *users.User) *v1.User {
	out := &v1.User{
		ObjectMeta: metav1.ObjectMeta{
			Name: u.Name, UID: types.UID(u.UID), CreationTimestamp: metav1.NewTime(u.CreationTimestamp),
			ResourceVersion: strconv.FormatUint(u.Revision, 10), Generation: max(u.Generation, 1),
			Labels: u.Labels, Annotations: u.Annotations,
		},
		Spec: v1.UserSpec{
			DisplayName: u.DisplayName, Username: u.Name, Email: u.Email, Subject: u.Name,
			Groups: u.Groups, Disabled: u.Disabled,
		},
		Status: v1.UserStatus{Teams: u.Teams},
	}
	if len(u.ManagedFields) > 0 {
		// Written by this package from valid entries; unreadable ones are dropped, not fatal.
		_ = json.Unmarshal(u.ManagedFields, &out.ManagedFields)
	}
	return out
}

// setUserSpec copies what a client may set of a user (spec, labels, annotations, field owners)
// into the stored record; the teams, UID and age stay the store's.
func setUserSpec(dst *users.User, u *v1.User) error {
	dst.DisplayName, dst.Email, dst.Groups, dst.Disabled = u.Spec.DisplayName, u.Spec.Email, u.Spec.Groups, u.Spec.Disabled
	dst.Labels, dst.Annotations, dst.Generation = u.Labels, u.Annotations, u.Generation
	dst.ManagedFields = nil
	if len(u.ManagedFields) > 0 {
		data, err := json.Marshal(u.ManagedFields)
		if err != nil {
			return err
		}
		dst.ManagedFields = data
	}
	return nil
}

// get returns the user named name if c may read it; any other is "not found".
func (s *Users) get(ctx context.Context, c Caller, name string) (*v1.User, error) {
	if !c.MayReadUser(name) {
		return nil, apierrors.NewNotFound(userResource, name)
	}
	u, err := s.store.Get(ctx, name)
	if errors.Is(err, users.ErrNotFound) {
		return nil, apierrors.NewNotFound(userResource, name)
	}
	if err != nil {
		return nil, storeError(err)
	}
	return userObject(u), nil
}

// Get returns one user, never a password.
func (s *Users) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, c, name)
}

// List returns the users c may read, filtered by label and field selectors (metadata.name).
func (s *Users) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	all, rv, err := s.store.ListWithVersion(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	list := &v1.UserList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []v1.User{}}
	for _, u := range all {
		if o := userObject(u); c.MayReadUser(u.Name) && match(&o.ObjectMeta) {
			list.Items = append(list.Items, *o)
		}
	}
	return list, nil
}
