package registry

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// UserInfoFunc describes a user for Self (nil, nil when the user is not known).
type UserInfoFunc func(ctx context.Context, name string) (*v1.UserInfo, error)

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

// Create fills in the status of the given Self from the request's identity and access key.
// spec.accessKey may name another key the caller owns.
func (s *Selves) Create(ctx context.Context, obj runtime.Object, _ rest.ValidateObjectFunc, _ *metav1.CreateOptions) (runtime.Object, error) {
	in, ok := obj.(*v1.Self)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Self: %T", obj))
	}
	c, err := callerFrom(ctx, s.opts.AdminGroup, s.opts.Teams)
	if err != nil {
		return nil, apierrors.NewUnauthorized(err.Error())
	}
	out := in.DeepCopy()
	out.Status = v1.SelfStatus{Groups: c.Groups}
	if u, ok := genericapirequest.UserFrom(ctx); ok {
		out.Status.UID = u.GetUID()
		if u.GetName() == user.APIServerUser {
			return out, nil
		}
	}
	if c.Team != "" {
		out.Status.Team = &v1.EntityInfo{Name: c.Team}
	} else {
		info := &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: c.User, Username: c.User}}
		if s.userInfo != nil {
			known, err := s.userInfo(ctx, c.User)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			if known != nil {
				info = known
			}
		}
		out.Status.User = info
		out.Status.Subject = c.User
	}
	keyName := c.Key
	if in.Spec.AccessKey != "" {
		keyName = in.Spec.AccessKey
	}
	if keyName == "" {
		return out, nil
	}
	k, err := s.keys.Get(ctx, keyName)
	if errors.Is(err, store.ErrNotFound) || (err == nil && keyName != c.Key && !c.Owns(k)) {
		return nil, apierrors.NewNotFound(v1.Resource("ownedaccesskeys"), keyName)
	}
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out.Status.AccessKey = k.Name
	out.Status.AccessKeyScope = k.Spec.Scope
	out.Status.AccessKeyType = k.Spec.Type
	return out, nil
}
