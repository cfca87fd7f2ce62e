package sso

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// applyRefresh reads the identity from the refreshed token and returns the change to store: the
// new groups, the time, and the refresh token (the IdP's new one if it rotated it), sealed again.
func (h *Handler) applyRefresh(ctx context.Context, c *connector, p *oidc.Provider, k *v1.OwnedAccessKey, tok *oauth2.Token, oldRT string) (func(*v1.OwnedAccessKey), string, error) {
	old := k.Spec.Identity
	ru := h.rules(c)
	claims, _, err := c.claims(ctx, p, tok, ru, old.UserID)
	var inv *invalidToken
	if errors.As(err, &inv) {
		return nil, "the identity provider's refreshed token does not verify: " + inv.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	id, err := ru.mapClaims(claims)
	if isRefused(err) {
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	if id.ID.UserID != old.UserID || id.Name != k.Spec.User {
		return nil, fmt.Sprintf("the identity provider now names the user %q (subject %q); the key was made for %q (subject %q)", id.Name, id.ID.UserID, k.Spec.User, old.UserID), nil
	}
	rt := tok.RefreshToken
	if rt == "" {
		rt = oldRT // not rotated
	}
	now := metav1.Time{Time: h.opts.Now().UTC().Truncate(time.Second)}
	return func(cur *v1.OwnedAccessKey) {
		ident := id.ID
		ident.ConnectorData = []byte(h.opts.Box.Seal([]byte(rt), ConnectorDataPlace(cur.Name)))
		cur.Spec.Identity = &ident
		cur.Spec.Groups = slices.Clone(id.Groups)
		cur.Spec.IdentityRefresh = &now
	}, "", nil
}

// maxStoreAttempts bounds the retries of a refresh's write that meets a concurrent change.
const maxStoreAttempts = 5

// store applies change to the key as read, and on a conflict (an admin's edit meanwhile) to
// the key as it is now: the refresh's result, a rotated refresh token above all, is never lost,
// and whatever else changed is kept. A key deleted or re-created meanwhile is left alone.
func (h *Handler) store(ctx context.Context, k *v1.OwnedAccessKey, change func(*v1.OwnedAccessKey)) error {
	cur := k
	for range maxStoreAttempts {
		upd := cur.DeepCopy()
		change(upd)
		_, err := h.opts.Keys.Update(ctx, upd)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		if cur, err = h.opts.Keys.Get(ctx, k.Name); err != nil {
			return err
		}
		if cur.UID != k.UID {
			return nil
		}
	}
	return fmt.Errorf("key %s kept changing; the refresh is retried at the next pass", k.Name)
}
