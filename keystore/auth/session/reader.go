package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Keys looks a session's key up by its plain key (store.Store in production).
type Keys interface {
	Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error)
}

// Users says what the user store knows of a user now (users.Store in production): an error
// wrapping users.ErrNotFound for a user it does not have.
type Users interface {
	Get(ctx context.Context, name string) (*users.User, error)
}

// Reader reads the session of a request. Keys and Users are required.
type Reader struct {
	Keys  Keys
	Users Users
	// MaxTTL is the operator's cap on every key's lifetime (extauthz's --max-ttl; 0: none), so
	// that a session ends when its key stops working at the edge.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Lookup returns the request's session: its cookie names a Login key that exists, is neither
// disabled nor expired, and whose user the store still vouches for (accesskey.CheckOwner: not
// disabled, deleted or re-created). The session is judged at every request, as extauthz judges
// a key, so deleting or disabling the key or the user ends it at once.
//
// Every invalid cookie gives an error wrapping ErrNoSession, saying why (for logs), and Lookup
// clears the cookie on w, so the browser stops sending a dead key. Any other error is a store
// that cannot answer: the cookie is kept, since the session may well be good.
func (rd *Reader) Lookup(ctx context.Context, w http.ResponseWriter, r *http.Request) (*Session, error) {
	plain := Plain(r)
	if plain == "" {
		return nil, ErrNoSession
	}
	s, err := rd.judge(ctx, plain)
	if errors.Is(err, ErrNoSession) {
		Clear(w)
	}
	return s, err
}

// judge checks the key plain as Lookup describes.
func (rd *Reader) judge(ctx context.Context, plain string) (*Session, error) {
	k, err := rd.Keys.Lookup(ctx, plain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: unknown key", ErrNoSession)
	case err != nil:
		return nil, fmt.Errorf("read the session's key: %w", err)
	}
	now := time.Now
	if rd.Now != nil {
		now = rd.Now
	}
	switch {
	case k.Spec.Type != v1.AccessKeyTypeLogin:
		// Only keys made by a login are sessions: a CI key pasted into the cookie is not.
		return nil, fmt.Errorf("%w: key %s is not a login key", ErrNoSession, k.Name)
	case k.Spec.User == "":
		return nil, fmt.Errorf("%w: key %s has no user", ErrNoSession, k.Name)
	case k.Spec.Disabled:
		return nil, fmt.Errorf("%w: key %s is disabled", ErrNoSession, k.Name)
	case accesskey.Expired(k, now(), rd.MaxTTL):
		return nil, fmt.Errorf("%w: key %s has expired", ErrNoSession, k.Name)
	}
	owner, err := rd.owner(ctx, k.Spec.User)
	if err != nil {
		return nil, err
	}
	if p := accesskey.CheckOwner(k, owner); p != accesskey.OwnerOK {
		return nil, fmt.Errorf("%w: %s", ErrNoSession, p.Message(k))
	}
	return &Session{User: k.Spec.User, Key: k}, nil
}

// owner is what the user store says of name now.
func (rd *Reader) owner(ctx context.Context, name string) (accesskey.Owner, error) {
	u, err := rd.Users.Get(ctx, name)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return accesskey.Owner{}, nil
	case err != nil:
		return accesskey.Owner{}, fmt.Errorf("read the session's user: %w", err)
	}
	return accesskey.Owner{Known: true, UID: u.UID, Disabled: u.Disabled, Groups: u.Groups}, nil
}
