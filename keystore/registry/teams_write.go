package registry

import (
	"context"
	"errors"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/validation"
	"github.com/keygate-dev/keygate/keystore/teams"
	"github.com/keygate-dev/keygate/keystore/users"
)

func asTeam(obj runtime.Object) (*v1.Team, error) {
	t, ok := obj.(*v1.Team)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not a Team: %T", obj))
	}
	return t.DeepCopy(), nil
}

// checkMembers refuses spec.users naming users the store does not have: membership is kept on
// the users, so an unknown user could hold none.
func (s *Teams) checkMembers(ctx context.Context, t *v1.Team) error {
	var errs field.ErrorList
	for i, name := range t.Spec.Users {
		if _, err := s.people.Get(ctx, name); errors.Is(err, users.ErrNotFound) {
			errs = append(errs, field.NotFound(field.NewPath("spec", "users").Index(i), name))
		} else if err != nil {
			return storeError(err)
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(teamKind, t.Name, errs)
	}
	return nil
}

// Create stores a new team and makes exactly spec.users its members.
func (s *Teams) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	t, err := asTeam(obj)
	if err != nil {
		return nil, err
	}
	if err := s.id.mayWrite(ctx, c, t.Name); err != nil {
		return nil, err
	}
	t.UID, t.CreationTimestamp, t.Generation, t.ResourceVersion = "", metav1.Time{}, 1, ""
	t.DeletionTimestamp, t.DeletionGracePeriodSeconds, t.Status = nil, nil, v1.TeamStatus{}
	if errs := validation.ValidateTeam(t); len(errs) > 0 {
		return nil, apierrors.NewInvalid(teamKind, t.Name, errs)
	}
	if err := s.checkMembers(ctx, t); err != nil {
		return nil, err
	}
	if createValidation != nil {
		if err := createValidation(ctx, t); err != nil {
			return nil, err
		}
	}
	if dryRun(options.DryRun) {
		return t, nil
	}
	rec, err := teamRecord(t)
	if err != nil {
		return nil, storeError(err)
	}
	stored, err := s.store.Create(ctx, rec)
	if err != nil {
		return nil, teamWriteError(t.Name, err)
	}
	if err := s.setMembers(ctx, t.Name, t.Spec.Users); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("team %s was created, but its members could not all be written (apply it again): %w", t.Name, err))
	}
	return s.get(ctx, c, stored.Name)
}

func teamWriteError(name string, err error) error {
	switch {
	case errors.Is(err, teams.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(teamResource, name)
	case errors.Is(err, teams.ErrConflict):
		return apierrors.NewConflict(teamResource, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, teams.ErrNotFound):
		return apierrors.NewNotFound(teamResource, name)
	}
	return storeError(err)
}

// Update changes a team and its members (admins only); with forceAllowCreate (server-side
// apply of a new object) it creates one.
func (s *Teams) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
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
	t, err := s.updatedTeam(ctx, name, objInfo, cur)
	if err != nil {
		return nil, false, err
	}
	if errs := validation.ValidateTeamUpdate(t, cur); len(errs) > 0 {
		return nil, false, apierrors.NewInvalid(teamKind, name, errs)
	}
	if err := s.checkMembers(ctx, t); err != nil {
		return nil, false, err
	}
	if updateValidation != nil {
		if err := updateValidation(ctx, t, cur); err != nil {
			return nil, false, err
		}
	}
	if dryRun(options.DryRun) {
		return t, false, nil
	}
	return s.writeTeam(ctx, c, t)
}

// writeTeam writes the team record (checking its resourceVersion), then its members.
func (s *Teams) writeTeam(ctx context.Context, c Caller, t *v1.Team) (runtime.Object, bool, error) {
	rec, err := teamRecord(t)
	if err != nil {
		return nil, false, storeError(err)
	}
	if _, err := s.store.Update(ctx, rec, t.ResourceVersion); err != nil {
		return nil, false, teamWriteError(t.Name, err)
	}
	if err := s.setMembers(ctx, t.Name, t.Spec.Users); err != nil {
		return nil, false, apierrors.NewInternalError(fmt.Errorf("team %s was changed, but its members could not all be written (apply it again): %w", t.Name, err))
	}
	out, err := s.get(ctx, c, t.Name)
	return out, false, err
}

// updatedTeam is the team cur becomes: the client's object with the server's fields of cur.
func (s *Teams) updatedTeam(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, cur *v1.Team) (*v1.Team, error) {
	obj, err := objInfo.UpdatedObject(ctx, cur)
	if err != nil {
		return nil, err
	}
	t, err := asTeam(obj)
	if err != nil {
		return nil, err
	}
	if t.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name in the object (%q) differs from the name in the URL (%q)", t.Name, name))
	}
	if t.ResourceVersion == "" {
		t.ResourceVersion = cur.ResourceVersion // an unconditional update
	}
	t.UID, t.CreationTimestamp, t.Generation = cur.UID, cur.CreationTimestamp, cur.Generation
	t.DeletionTimestamp, t.DeletionGracePeriodSeconds, t.Status = cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds, cur.Status
	if !apiequality.Semantic.DeepEqual(t.Spec, cur.Spec) {
		t.Generation++
	}
	return t, nil
}

// Delete removes a team (admins only) and its membership from every member, so that a team
// created again under the name starts empty.
func (s *Teams) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	c, err := s.id.writer(ctx, name)
	if err != nil {
		return nil, false, err
	}
	cur, err := s.get(ctx, c, name)
	if err != nil {
		return nil, false, err
	}
	if checkPreconditions(options, string(cur.UID), cur.ResourceVersion) != nil {
		return nil, false, apierrors.NewConflict(teamResource, name, errors.New("precondition failed: uid or resourceVersion is not the object's"))
	}
	if deleteValidation != nil {
		if err := deleteValidation(ctx, cur); err != nil {
			return nil, false, err
		}
	}
	if options != nil && dryRun(options.DryRun) {
		return cur, true, nil
	}
	// Members first, then the team: membership lives on each user's record, so a write that
	// fails half-way must leave the team in place for the delete to be retried. The other way
	// round, the team was gone and its remaining members kept it on their records, where a
	// team of the same name, created later, would have found them.
	if err := s.setMembers(ctx, name, nil); err != nil {
		return nil, false, apierrors.NewInternalError(fmt.Errorf("team %s: not every member's record could be updated, so the team is not deleted; retry: %w", name, err))
	}
	if _, err := s.store.Delete(ctx, name, cur.ResourceVersion); err != nil {
		return nil, false, teamWriteError(name, err)
	}
	return cur, true, nil
}
