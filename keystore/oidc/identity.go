package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// person is who a token speaks for, as the stores say now: groups are read at every token, so
// a group taken from a user leaves their next token.
type person struct {
	Name          string // spec.user: the name the edge knows them by
	DisplayName   string
	Email         string
	EmailVerified bool
	Groups        []string
}

// errRefused is a grant whose user may no longer have tokens; its message says why (for logs
// and the error_description, naming only the caller's own user).
type errRefused struct{ why string }

func (e *errRefused) Error() string { return e.why }

// refusedReason is the metric label of a refusal.
func refusedReason(err error) string {
	var r *errRefused
	if errors.As(err, &r) {
		return r.why
	}
	return "error"
}

// resolve judges g's user now, with the rules the edge applies to every key of theirs
// (accesskey.CheckOwner): a user of the store must exist, be enabled and be the one the
// session was for; an SSO identity (a user the store does not have) needs its session's Login
// key, alive and enabled, whose spec.identity holds its groups.
func (p *Provider) resolve(ctx context.Context, g grant) (*person, error) {
	owner, u, err := p.owner(ctx, g.User)
	if err != nil {
		return nil, err
	}
	probe := &v1.OwnedAccessKey{}
	accesskey.SetOwnerUID(probe, g.OwnerUID)
	if problem := accesskey.CheckOwner(probe, owner); problem != accesskey.OwnerOK {
		return nil, &errRefused{string(problem)}
	}
	if u != nil {
		return &person{Name: u.Name, DisplayName: u.DisplayName, Email: u.Email, Groups: slices.Clone(u.Groups)}, nil
	}
	return p.ssoPerson(ctx, g)
}

// owner is what the user store says of name now.
func (p *Provider) owner(ctx context.Context, name string) (accesskey.Owner, *users.User, error) {
	u, err := p.opts.Users.Get(ctx, name)
	if errors.Is(err, users.ErrNotFound) {
		return accesskey.Owner{}, nil, nil
	}
	if err != nil {
		return accesskey.Owner{}, nil, fmt.Errorf("read user %s: %w", name, err)
	}
	return accesskey.Owner{Known: true, UID: u.UID, Disabled: u.Disabled, Groups: u.Groups}, u, nil
}

// ssoPerson is an external identity, as its session's Login key (kept fresh by the connector)
// says now.
func (p *Provider) ssoPerson(ctx context.Context, g grant) (*person, error) {
	if g.Parent == "" {
		return nil, &errRefused{"no session"}
	}
	k, err := p.opts.Keys.Get(ctx, g.Parent)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &errRefused{"session ended"}
	}
	if err != nil {
		return nil, fmt.Errorf("read session key %s: %w", g.Parent, err)
	}
	switch {
	case k.Spec.Disabled:
		return nil, &errRefused{"session disabled"}
	case accesskey.Expired(k, p.opts.Now(), 0):
		return nil, &errRefused{"session expired"}
	case k.Spec.User != g.User || k.Spec.Identity == nil:
		return nil, &errRefused{"session is not this identity's"}
	}
	id := k.Spec.Identity
	groups := id.Groups
	if len(groups) == 0 {
		groups = k.Spec.Groups
	}
	return &person{Name: g.User, DisplayName: id.Username, Email: id.Email, EmailVerified: id.EmailVerified, Groups: slices.Clone(groups)}, nil
}
