package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/validation"
	"github.com/keygate-dev/keygate/keystore/users"
)

func asUser(obj runtime.Object) (*v1.User, error) {
	u, ok := obj.(*v1.User)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a User: %T", obj))
	}
	return u.DeepCopy(), nil
}

// Create stores a new user, without a password: `keystore set-password` gives them one. The
// server's fields (uid, creationTimestamp, generation, status, username, subject) are the
// server's whatever the client sends; the user is in no team until a team lists them.
func (s *Users) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	u, err := asUser(obj)
	if err != nil {
		return nil, err
	}
	if err := s.id.mayWrite(ctx, c, u.Name); err != nil {
		return nil, err
	}
	u.UID, u.CreationTimestamp, u.Generation, u.ResourceVersion = "", metav1.Time{}, 1, ""
	u.DeletionTimestamp, u.DeletionGracePeriodSeconds = nil, nil
	u.Status = v1.UserStatus{}
	if errs := validation.ValidateUser(u); len(errs) > 0 {
		return nil, apierrors.NewInvalid(userKind, u.Name, errs)
	}
	fillUserNames(u)
	if createValidation != nil {
		if err := createValidation(ctx, u); err != nil {
			return nil, err
		}
	}
	if dryRun(options.DryRun) {
		return u, nil
	}
	rec := users.User{Name: u.Name}
	if err := setUserSpec(&rec, u); err != nil {
		return nil, storeError(err)
	}
	stored, err := s.store.CreateWithoutPassword(ctx, rec)
	switch {
	case errors.Is(err, users.ErrAlreadyExists):
		return nil, apierrors.NewAlreadyExists(userResource, u.Name)
	case errors.Is(err, users.ErrInvalid):
		return nil, apierrors.NewBadRequest(err.Error())
	case err != nil && stored == nil:
		return nil, storeError(err)
	}
	return userObject(stored), nil
}

// fillUserNames sets username and subject, which are always the object's name here.
func fillUserNames(u *v1.User) {
	u.Spec.Username, u.Spec.Subject = u.Name, u.Name
}

// Update changes a user (admins only); with forceAllowCreate (server-side apply of a new
// object) it creates one. A write made from a stale read (resourceVersion) is a conflict.
func (s *Users) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	c, err := s.id.writer(ctx, name)
	if err != nil {
		return nil, false, err
	}
	cur, err := s.get(ctx, c, name)
	if apierrors.IsNotFound(err) && forceAllowCreate {
		return createOnUpdate(ctx, s, objInfo, createValidation, options)
	}
	if err != nil {
		return nil, false, err
	}
	u, err := s.updatedUser(ctx, name, objInfo, cur)
	if err != nil {
		return nil, false, err
	}
	if errs := validation.ValidateUserUpdate(u, cur); len(errs) > 0 {
		return nil, false, apierrors.NewInvalid(userKind, name, errs)
	}
	fillUserNames(u)
	if updateValidation != nil {
		if err := updateValidation(ctx, u, cur); err != nil {
			return nil, false, err
		}
	}
	if dryRun(options.DryRun) {
		return u, false, nil
	}
	out, err := s.store.Update(ctx, name, func(rec *users.User) error {
		if strconv.FormatUint(rec.Revision, 10) != u.ResourceVersion {
			return users.ErrConflict
		}
		return setUserSpec(rec, u)
	})
	if err != nil && out == nil {
		return nil, false, userWriteError(name, err)
	}
	return userObject(out), false, nil
}

// updatedUser is the user cur becomes: the client's object with the server's fields of cur.
func (s *Users) updatedUser(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, cur *v1.User) (*v1.User, error) {
	obj, err := objInfo.UpdatedObject(ctx, cur)
	if err != nil {
		return nil, err
	}
	u, err := asUser(obj)
	if err != nil {
		return nil, err
	}
	if u.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name in the object (%q) differs from the name in the URL (%q)", u.Name, name))
	}
	if u.ResourceVersion == "" {
		u.ResourceVersion = cur.ResourceVersion // an unconditional update
	}
	u.UID, u.CreationTimestamp, u.Generation = cur.UID, cur.CreationTimestamp, cur.Generation
	u.DeletionTimestamp, u.DeletionGracePeriodSeconds = cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds
	if !apiequality.Semantic.DeepEqual(u.Spec, cur.Spec) {
		u.Generation++
	}
	u.Status = cur.Status // teams change through a team's spec.users
	return u, nil
}

func userWriteError(name string, err error) error {
	switch {
	case errors.Is(err, users.ErrConflict):
		return apierrors.NewConflict(userResource, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, users.ErrNotFound):
		return apierrors.NewNotFound(userResource, name)
	case errors.Is(err, users.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	}
	return storeError(err)
}

// Delete removes a user (admins only), honouring uid and resourceVersion preconditions. The
// edge refuses the user's keys at once (their recorded UID no longer matches).
func (s *Users) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	c, err := s.id.writer(ctx, name)
	if err != nil {
		return nil, false, err
	}
	cur, err := s.get(ctx, c, name)
	if err != nil {
		return nil, false, err
	}
	if deleteValidation != nil {
		if err := deleteValidation(ctx, cur); err != nil {
			return nil, false, err
		}
	}
	if options != nil && dryRun(options.DryRun) {
		return cur, true, nil
	}
	out, err := s.store.DeleteIf(ctx, name, func(u *users.User) error {
		return checkPreconditions(options, u.UID, strconv.FormatUint(u.Revision, 10))
	})
	if err != nil && out == nil {
		return nil, false, userWriteError(name, err)
	}
	return userObject(out), true, nil
}

// checkPreconditions is users.ErrConflict when options' uid or resourceVersion precondition
// is not the object's.
func checkPreconditions(options *metav1.DeleteOptions, uid, rv string) error {
	if options == nil || options.Preconditions == nil {
		return nil
	}
	p := options.Preconditions
	if (p.UID != nil && string(*p.UID) != uid) || (p.ResourceVersion != nil && *p.ResourceVersion != rv) {
		return users.ErrConflict
	}
	return nil
}
