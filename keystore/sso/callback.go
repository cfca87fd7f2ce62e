package sso

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/store"
)

// maxNameAttempts bounds the retries when a generated key name is taken.
const maxNameAttempts = 5

func (h *Handler) callback(w http.ResponseWriter, r *http.Request, c *connector) {
	q := r.URL.Query()
	pl, err := h.takePending(w, r, c)
	if idpErr := q.Get("error"); idpErr != "" {
		// The IdP refused (the user cancelled, or may not use this client): its pending login, if
		// any, is gone with the cookie; nothing is created.
		h.metrics.login(c.id, resultIdPError)
		h.log.Info("sso login refused by the identity provider", "connector", c.id, "error", idpErr, "description", q.Get("error_description"))
		code := http.StatusBadRequest
		if idpErr == "access_denied" {
			code = http.StatusForbidden
		}
		page(w, code, "Sign-in refused", fmt.Sprintf("The identity provider refused the sign-in (%s). %s", idpErr, q.Get("error_description")))
		return
	}
	if err != nil {
		h.badState(w, c, err)
		return
	}
	id, tok, err := h.identify(r.Context(), c, pl, q.Get("code"))
	if err != nil {
		h.refuseLogin(w, c, err)
		return
	}
	plain, key, err := h.issue(r.Context(), c, id, tok)
	if err != nil {
		h.refuseLogin(w, c, err)
		return
	}
	h.metrics.login(c.id, resultOK)
	expires := key.CreationTimestamp.Add(time.Duration(key.Spec.TTL) * time.Second)
	h.log.Info("sso login", "connector", c.id, "user", id.Name, "subject", id.ID.UserID, "key", key.Name, "groups", id.Groups, "droppedGroups", id.Dropped)
	h.finish(w, r, pl, &session.Session{User: id.Name, Key: key}, plain, expires)
}

func (h *Handler) badState(w http.ResponseWriter, c *connector, err error) {
	if errors.Is(err, errBadState) {
		h.metrics.login(c.id, resultBadState)
		h.log.Info("sso login refused: state missing, not this browser's, expired or used", "connector", c.id)
		page(w, http.StatusBadRequest, "Sign-in failed", "This sign-in link is not valid in this browser, has expired or was used already; start the sign-in again.")
		return
	}
	h.metrics.login(c.id, resultError)
	h.log.Error("sso login failed: pending logins unavailable", "connector", c.id, "error", err)
	page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Sign-in is not available right now; try again later.")
}

// refuseLogin answers a callback that makes no key: a rule's refusal (403), a token that does
// not verify (400), or an IdP or store that cannot answer (502, 503).
func (h *Handler) refuseLogin(w http.ResponseWriter, c *connector, err error) {
	var inv *invalidToken
	var rerr *oauth2.RetrieveError
	switch {
	case isRefused(err):
		h.metrics.login(c.id, resultRefused)
		h.log.Warn("sso login refused", "connector", c.id, "reason", err.Error())
		page(w, http.StatusForbidden, "Sign-in refused", err.Error())
	case errors.As(err, &inv):
		h.metrics.login(c.id, resultInvalidToken)
		h.log.Warn("sso login refused: the identity provider's token does not verify", "connector", c.id, "error", err)
		page(w, http.StatusBadRequest, "Sign-in failed", "The identity provider's answer could not be verified; start the sign-in again.")
	case errors.As(err, &rerr):
		h.metrics.login(c.id, resultIdPError)
		h.log.Warn("sso login failed: the identity provider refused the code", "connector", c.id, "error", rerr.ErrorCode)
		page(w, http.StatusBadRequest, "Sign-in failed", "The identity provider refused to finish the sign-in; start it again.")
	default:
		h.metrics.login(c.id, resultError)
		h.log.Error("sso login failed", "connector", c.id, "error", err)
		page(w, http.StatusBadGateway, "Sign-in unavailable", "Sign-in cannot be finished right now; try again later.")
	}
}

// identify exchanges the code (with the PKCE verifier), verifies the ID token and its nonce,
// and maps the claims; a name the user store has is refused.
func (h *Handler) identify(ctx context.Context, c *connector, pl *pending, code string) (*identity, *oauth2.Token, error) {
	if code == "" {
		return nil, nil, &invalidToken{errors.New("the callback has no code")}
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := c.oauth2(p)
	if err != nil {
		return nil, nil, err
	}
	tok, err := cfg.Exchange(c.ctx(ctx), code, oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		return nil, nil, err
	}
	ru := h.rules(c)
	claims, idt, err := c.claims(ctx, p, tok, ru, "")
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.Nonce)) != 1 {
		return nil, nil, &invalidToken{errors.New("the ID token's nonce is not this login's")}
	}
	id, err := ru.mapClaims(claims)
	if err != nil {
		return nil, nil, err
	}
	if err := h.notAStoreUser(ctx, id.Name); err != nil {
		return nil, nil, err
	}
	return id, tok, nil
}

// notAStoreUser refuses a name the user store has: the key would record no owner UID, and an
// IdP's user must never act as the store's user of that name (extauthz refuses such keys too).
func (h *Handler) notAStoreUser(ctx context.Context, name string) error {
	exists, err := h.opts.Users(ctx, name)
	if err != nil {
		return err
	}
	if exists {
		return refuse("user name %q belongs to a user of this platform's own user store; an identity provider's user cannot sign in as them (ask the operator to set a usernamePrefix for this connector)", name)
	}
	return nil
}

// issue creates the login key of id, with tok's refresh token sealed for it.
func (h *Handler) issue(ctx context.Context, c *connector, id *identity, tok *oauth2.Token) (string, *v1.OwnedAccessKey, error) {
	now := h.opts.Now()
	for range maxNameAttempts {
		k := &v1.OwnedAccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: auth.LoginKeyName(id.Name)},
			Spec: v1.OwnedAccessKeySpec{
				DisplayName:     "login of " + id.Name + " with " + c.id,
				Description:     "Made by a single sign-on at /auth/" + c.id + "/login; its groups follow the identity provider.",
				User:            id.Name,
				Groups:          id.Groups,
				TTL:             int64(h.opts.LoginTTL / time.Second),
				Type:            v1.AccessKeyTypeLogin,
				IdentityRefresh: &metav1.Time{Time: now.UTC().Truncate(time.Second)},
			},
		}
		ident := id.ID
		ident.ConnectorData = []byte(h.opts.Box.Seal([]byte(tok.RefreshToken), ConnectorDataPlace(k.Name)))
		k.Spec.Identity = &ident
		q := store.PerOwner(k, h.opts.MaxLoginKeys, now)
		q.EvictOldest = true
		plain, stored, evicted, err := h.opts.Keys.CreateWithinQuota(ctx, k, q)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue
		}
		if len(evicted) > 0 {
			h.log.Info("sso login: deleted the user's oldest login keys to stay within the bound", "user", id.Name, "keys", evicted)
		}
		return plain, stored, err
	}
	return "", nil, fmt.Errorf("no free key name for user %s after %d attempts", id.Name, maxNameAttempts)
}

// ConnectorDataPlace is what a key's connectorData is sealed for: that key alone, so a value
// copied into another key's record does not open.
func ConnectorDataPlace(keyName string) string { return "connector-data/" + keyName }
