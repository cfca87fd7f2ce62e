package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// A single sign-on identity's CLI key is a child of the browser session it signed in with
// (accesskey.BoundToParent): the session alone holds the identity provider's refresh token and
// is refreshed, and keystore/store keeps the child in step with it (groups, disabling, end) and
// deletes it with the session. The session comes from the provider's grant, never from the
// client, so nobody's key becomes the child of someone else's session.

// sessionEnded is the answer when the session cannot have a child: the user signs in again.
const sessionEnded = "your single sign-on session has ended (signed out, expired or disabled); run keygate login --sso again"

// sessionProblem says why k, the session name signed in with, cannot have a CLI key as its
// child, or "".
func sessionProblem(k *v1.OwnedAccessKey, name string, now time.Time) string {
	switch {
	case !accesskey.FromSSO(k):
		return "not a single sign-on session"
	case k.Spec.User != name:
		return "another user's session"
	case k.Spec.Disabled:
		return "session disabled"
	case accesskey.Expired(k, now, 0):
		return "session expired"
	}
	return ""
}

// issueChild issues the CLI key of a single sign-on identity, as a child of its session, and
// counts the login.
func (h *Handler) issueChild(ctx context.Context, in *CLISignIn, addr string) (*Login, error) {
	fail := func(code int, result, msg string, err error) (*Login, error) {
		h.metrics.logins.WithLabelValues(MethodOIDC, result).Inc()
		return nil, &LoginFailure{Code: code, Message: msg, err: err}
	}
	parent, err := h.opts.Keys.Get(ctx, in.Session)
	why := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		why = "session gone"
	case err != nil:
		h.log.Error("oidc login failed: cannot read the session", "user", in.Name, "session", in.Session, "client", addr, "error", err)
		return fail(http.StatusServiceUnavailable, LoginError, "logins cannot be checked right now; try again later", err)
	default:
		why = sessionProblem(parent, in.Name, time.Now())
	}
	var plain string
	var key *v1.OwnedAccessKey
	var evicted []string
	if why == "" {
		plain, key, evicted, err = h.createChild(ctx, parent)
		if errors.Is(err, store.ErrParent) {
			why, err = err.Error(), nil
		}
	}
	switch {
	case why != "":
		h.log.Info("oidc login refused: the single sign-on session cannot have a CLI key", "user", in.Name, "session", in.Session, "reason", why, "client", addr)
		return fail(http.StatusUnauthorized, LoginInvalid, sessionEnded, nil)
	case err != nil:
		h.log.Error("oidc login failed: cannot create the access key", "user", in.Name, "client", addr, "error", err)
		return fail(http.StatusServiceUnavailable, LoginError, "access keys cannot be created right now; try again later", err)
	}
	if len(evicted) > 0 {
		h.log.Info("login: deleted the user's oldest login keys to stay within the bound", "user", in.Name, "keys", evicted, "maxLoginKeys", h.opts.MaxLoginKeys)
	}
	expires := key.CreationTimestamp.Add(time.Duration(key.Spec.TTL) * time.Second).UTC()
	h.metrics.logins.WithLabelValues(MethodOIDC, LoginOK).Inc()
	h.log.Info("login", "method", MethodOIDC, "user", in.Name, "key", key.Name, "session", parent.Name, "client", addr, "expiresAt", expires.Format(time.RFC3339))
	// An external identity has no user record: the login carries its name alone.
	return &Login{Plain: plain, Key: key, User: &users.User{Name: in.Name}, ExpiresAt: expires}, nil
}

// createChild creates the CLI key bound to parent: the store makes it follow the parent (its
// user, groups, identity, and an end no later than the parent's) and never evicts the parent
// to make room for it.
func (h *Handler) createChild(ctx context.Context, parent *v1.OwnedAccessKey) (string, *v1.OwnedAccessKey, []string, error) {
	name := parent.Spec.User
	for range maxNameAttempts {
		k := &v1.OwnedAccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: loginKeyName(name)},
			Spec: v1.OwnedAccessKeySpec{
				DisplayName: "CLI login of " + name,
				Description: "Made by a browser login of the keygate CLI (POST /auth/oidc/login) through single sign-on. " +
					"It follows its session key " + parent.Name + " (spec.parent): the groups the identity provider gives, and its end " +
					"(a logout, a refresh the identity provider refuses, its ttl); or ends with its own logout.",
				User:   name,
				TTL:    int64(h.opts.LoginTTL / time.Second),
				Type:   v1.AccessKeyTypeLogin,
				Parent: parent.Name,
			},
		}
		q := store.PerOwner(k, h.opts.MaxLoginKeys, time.Now())
		q.EvictOldest = true
		plain, stored, evicted, err := h.opts.Keys.CreateWithinQuota(ctx, k, q)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue
		}
		return plain, stored, evicted, err
	}
	return "", nil, nil, fmt.Errorf("no free key name for user %s after %d attempts", name, maxNameAttempts)
}
