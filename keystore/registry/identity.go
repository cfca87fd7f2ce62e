package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// identity is what the storages of users and teams share: who calls, and whether they may
// write identities at all.
type identity struct {
	keys     Keys
	opts     Options
	resource schema.GroupResource
}

func (i identity) caller(ctx context.Context) (Caller, error) {
	c, err := callerFrom(ctx, i.opts.AdminGroup, i.opts.Teams)
	if err != nil {
		return c, callerError(err)
	}
	return c, nil
}

// writer is the caller of a write of the user or team name, if they may write identities at
// all (mayWrite).
func (i identity) writer(ctx context.Context, name string) (Caller, error) {
	c, err := i.caller(ctx)
	if err != nil {
		return c, err
	}
	return c, i.mayWrite(ctx, c, name)
}

// mayWrite refuses a write of users or teams to all but an admin's unscoped key. Identity
// decides what every key of a user does, so a key narrowed to some projects must not be able
// to give its user (or anyone) more: the "no key widens itself" rule, for identities.
func (i identity) mayWrite(ctx context.Context, c Caller, name string) error {
	if !c.Admin {
		return apierrors.NewForbidden(i.resource, name, errors.New("only admins may create, change or delete users and teams"))
	}
	own, err := requestKey(ctx, i.keys, c, i.resource, name)
	if err != nil || own == nil {
		return err // own is nil for the apiserver's own loopback client
	}
	if !scopeEmpty(own.Spec.Scope) {
		return apierrors.NewForbidden(i.resource, name, fmt.Errorf("the access key of this request (%q) is scoped: users and teams are written only with an admin's unscoped key", own.Name))
	}
	return nil
}

// MayReadUser reports whether c may read the user named name: admins every user, a user
// themselves.
func (c Caller) MayReadUser(name string) bool {
	return c.Admin || (c.User != "" && c.User == name)
}

// MayReadTeam reports whether c may read the team named name: admins every team, its members
// and its own keys.
func (c Caller) MayReadTeam(name string) bool {
	return c.Admin || c.Team == name || slices.Contains(c.Teams, name)
}

// metaMatcher turns list options into a predicate on object metadata. Only metadata.name is a
// supported field.
func metaMatcher(options *metainternalversion.ListOptions) (func(*metav1.ObjectMeta) bool, error) {
	ls, fs := labels.Everything(), fields.Everything()
	if options != nil {
		if options.LabelSelector != nil {
			ls = options.LabelSelector
		}
		if options.FieldSelector != nil {
			fs = options.FieldSelector
			for _, r := range fs.Requirements() {
				if r.Field != "metadata.name" {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("field selector %q: only metadata.name is supported", r.Field))
				}
			}
		}
	}
	return func(m *metav1.ObjectMeta) bool {
		return ls.Matches(labels.Set(m.Labels)) && fs.Matches(fields.Set{"metadata.name": m.Name})
	}, nil
}
