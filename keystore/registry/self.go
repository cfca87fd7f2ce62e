package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// UserDetails is what the user store says of a user.
type UserDetails struct {
	Info *v1.UserInfo
	// UID tells this user from an earlier one of the same name (accesskey.CheckOwner).
	UID string
	// Groups are the user's groups, which the edge sends with every key of theirs.
	Groups   []string
	Disabled bool
}

// UserInfoFunc describes a user for Self (nil, nil when the user is not known).
type UserInfoFunc func(ctx context.Context, name string) (*UserDetails, error)

// Selves answers "who am I" (create a Self; nothing is stored), the way Loft's CLI asks.
type Selves struct {
	keys     Keys
	opts     Options
	userInfo UserInfoFunc
	rest.TableConvertor
}

// NewSelves returns the storage of selves.
func NewSelves(keys Keys, opts Options, userInfo UserInfoFunc) *Selves {
	return &Selves{keys: keys, opts: opts, userInfo: userInfo, TableConvertor: rest.NewDefaultTableConvertor(v1.Resource("selves"))}
}

var (
	_ rest.Storage              = &Selves{}
	_ rest.Scoper               = &Selves{}
	_ rest.SingularNameProvider = &Selves{}
	_ rest.Creater              = &Selves{}
)

func (*Selves) New() runtime.Object     { return &v1.Self{} }
func (*Selves) Destroy()                {}
func (*Selves) NamespaceScoped() bool   { return false }
func (*Selves) GetSingularName() string { return "self" }

// Create fills in the status of the given Self from the request's identity and access key, or,
// when spec.accessKey holds a plain access key, from that key: Loft's CLI asks this way whether a
// key it saved is still valid and still the same user's. Knowing a key is proof enough to learn
// whose it is; an unknown, disabled or expired key, or one the edge refuses for its user
// (disabled, deleted, re-created: accesskey.CheckOwner), is refused with 422 and the same
// message, whichever it is.
func (s *Selves) Create(ctx context.Context, obj runtime.Object, _ rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	in, ok := obj.(*v1.Self)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Self: %T", obj))
	}
	c, err := callerFrom(ctx, s.opts.AdminGroup, s.opts.Teams)
	if err != nil {
		return nil, callerError(err)
	}
	out := in.DeepCopy()
	out.Spec.AccessKey = "" // a plain key is never echoed
	if in.Spec.AccessKey != "" {
		return s.describeKey(ctx, out, in.Spec.AccessKey)
	}
	out.Status = v1.SelfStatus{Groups: c.Groups}
	if u, ok := genericapirequest.UserFrom(ctx); ok {
		out.Status.UID = u.GetUID()
		if u.GetName() == user.APIServerUser {
			return out, nil
		}
	}
	if err := s.describeOwner(ctx, out, c.User, c.Team); err != nil {
		return nil, err
	}
	if c.Key == "" {
		return out, nil
	}
	k, err := s.keys.Get(ctx, c.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierrors.NewNotFound(v1.Resource("ownedaccesskeys"), c.Key)
	}
	if err != nil {
		return nil, storeError(err)
	}
	setKey(out, k)
	return out, nil
}

// describeKey fills out's status from the key whose plain value is plain.
func (s *Selves) describeKey(ctx context.Context, out *v1.Self, plain string) (runtime.Object, error) {
	invalid := apierrors.NewInvalid(v1.SchemeGroupVersion.WithKind("Self").GroupKind(), out.Name, field.ErrorList{
		field.Invalid(field.NewPath("spec", "accessKey"), "(redacted)", "not a valid access key: unknown, disabled or expired"),
	})
	k, err := s.keys.Lookup(ctx, plain)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid
	}
	if err != nil {
		return nil, storeError(err)
	}
	if k.Spec.Disabled || accesskey.Expired(k, time.Now(), 0) {
		return nil, invalid
	}
	owner, err := s.owner(ctx, k)
	if err != nil {
		return nil, storeError(err)
	}
	if k.Spec.User != "" && accesskey.CheckOwner(k, owner) != accesskey.OwnerOK {
		return nil, invalid
	}
	// The groups the edge would send upstream for a request made with this key.
	out.Status = v1.SelfStatus{Groups: accesskey.Groups(accesskey.AsOwned(k, owner), owner.Groups)}
	if err := s.describeOwner(ctx, out, k.Spec.User, k.Spec.Team); err != nil {
		return nil, err
	}
	setKey(out, k)
	return out, nil
}

// owner is what the user store says of k's user, as extauthz reads it.
func (s *Selves) owner(ctx context.Context, k *v1.OwnedAccessKey) (accesskey.Owner, error) {
	if k.Spec.User == "" || s.userInfo == nil {
		return accesskey.Owner{}, nil
	}
	d, err := s.userInfo(ctx, k.Spec.User)
	if err != nil || d == nil {
		return accesskey.Owner{}, err
	}
	return accesskey.Owner{Known: true, UID: d.UID, Disabled: d.Disabled, Groups: d.Groups}, nil
}

// describeOwner sets the user (with what the user store knows) or the team.
func (s *Selves) describeOwner(ctx context.Context, out *v1.Self, userName, team string) error {
	if team != "" && userName == "" {
		out.Status.Team = &v1.EntityInfo{Name: team}
		return nil
	}
	info := &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: userName, Username: userName}}
	if s.userInfo != nil {
		d, err := s.userInfo(ctx, userName)
		if err != nil {
			return storeError(err)
		}
		if d != nil && d.Info != nil {
			info = d.Info
		}
	}
	out.Status.User = info
	out.Status.Subject = userName
	return nil
}

func setKey(out *v1.Self, k *v1.OwnedAccessKey) {
	out.Status.AccessKey = k.Name
	out.Status.AccessKeyScope = k.Spec.Scope
	out.Status.AccessKeyType = k.Spec.Type
}
