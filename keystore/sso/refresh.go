package sso

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Annotations a refresh sets on a key it disables. DisabledByAnnotation is the management
// API's (keystore/registry): a name no caller has, so only an admin enables the key again.
const (
	DisabledByAnnotation    = "keygate.dev/disabled-by"
	DisabledByRefresh       = "keygate:identity-refresh"
	RefreshFailedAnnotation = "keygate.dev/identity-refresh-failure"
)

// DefaultRefreshEvery is how often Refresh passes run; each refreshes the keys whose
// identityRefresh is older than their connector's refreshInterval.
const DefaultRefreshEvery = time.Minute

// refreshLockTTL bounds how long one replica holds a key's refresh: longer than one refresh
// takes (the IdP's client times out after 10 s).
const refreshLockTTL = time.Minute

// RunRefresher runs a refresh pass every every (0: DefaultRefreshEvery) until ctx ends. Every
// replica may run one: a key is refreshed under a Redis lock, since two replicas using one
// rotating refresh token would make the IdP refuse the second (and some revoke both).
func (h *Handler) RunRefresher(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRefreshEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		h.RefreshDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshDue refreshes every single sign-on key that is due, and returns how many it tried.
func (h *Handler) RefreshDue(ctx context.Context) int {
	keys, err := h.opts.Keys.List(ctx)
	if err != nil {
		h.log.Error("identity refresh: cannot list keys", "error", err)
		return 0
	}
	n := 0
	for _, k := range keys {
		if h.due(k) {
			n++
			h.refreshKey(ctx, k.Name)
		}
	}
	return n
}

// due says whether k is a single sign-on key (only keystore sets connectorData) in use whose
// identity is older than its connector's refresh interval. A key of a connector that is gone
// is due: nothing can vouch for it any more.
func (h *Handler) due(k *v1.OwnedAccessKey) bool {
	id := k.Spec.Identity
	if id == nil || len(id.ConnectorData) == 0 || k.Spec.Disabled || accesskey.Expired(k, h.opts.Now(), 0) {
		return false
	}
	c := h.connector(id.Connector)
	if c == nil || k.Spec.IdentityRefresh == nil {
		return true
	}
	return h.opts.Now().Sub(k.Spec.IdentityRefresh.Time) >= c.o.Interval()
}

// refreshKey refreshes the key named name under its lock; a replica that finds it locked
// leaves it to the holder.
func (h *Handler) refreshKey(ctx context.Context, name string) {
	lock := "keygate:sso:refresh-lock:{" + name + "}"
	token := random()
	ok, err := h.opts.Redis.SetNX(ctx, lock, token, refreshLockTTL).Result()
	if err != nil || !ok {
		return
	}
	defer h.opts.Redis.Eval(context.WithoutCancel(ctx), `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`, []string{lock}, token)
	k, err := h.opts.Keys.Get(ctx, name)
	if err != nil || !h.due(k) { // deleted, or refreshed by another replica meanwhile
		return
	}
	upd, why, err := h.refreshed(ctx, k)
	switch {
	case err != nil:
		h.metrics.refresh(refreshError)
		h.log.Warn("identity refresh failed; kept as is and retried", "key", name, "user", k.Spec.User, "connector", k.Spec.Identity.Connector, "error", err)
	case why != "":
		if err := h.store(ctx, k, func(cur *v1.OwnedAccessKey) { disable(cur, why) }); err != nil {
			h.metrics.refresh(refreshError)
			h.log.Error("identity refresh: cannot disable the key", "key", name, "reason", why, "error", err)
			return
		}
		h.metrics.refresh(refreshDisabled)
		h.log.Warn("identity refresh: key disabled", "key", name, "user", k.Spec.User, "connector", k.Spec.Identity.Connector, "reason", why)
	default:
		if err := h.store(ctx, k, upd); err != nil {
			h.metrics.refresh(refreshError)
			h.log.Error("identity refresh: cannot store the refreshed key", "key", name, "error", err)
			return
		}
		h.metrics.refresh(refreshOK)
		h.log.Info("identity refreshed", "key", name, "user", k.Spec.User, "groups", k.Spec.Groups)
	}
}

func disable(k *v1.OwnedAccessKey, why string) {
	k.Spec.Disabled = true
	if k.Annotations == nil {
		k.Annotations = map[string]string{}
	}
	k.Annotations[DisabledByAnnotation] = DisabledByRefresh
	k.Annotations[RefreshFailedAnnotation] = why
}

// refreshed asks the IdP about k's identity. It returns the change to make, or why the key
// must be disabled (the IdP refuses the refresh token, or the identity is no longer what the
// key was made for), or an error to retry later (the IdP or the network failing).
func (h *Handler) refreshed(ctx context.Context, k *v1.OwnedAccessKey) (func(*v1.OwnedAccessKey), string, error) {
	old := k.Spec.Identity
	c := h.connector(old.Connector)
	if c == nil {
		return nil, fmt.Sprintf("connector %q is no longer configured", old.Connector), nil
	}
	rt, err := h.opts.Box.Open(string(old.ConnectorData), ConnectorDataPlace(k.Name))
	if err != nil {
		return nil, "its refresh token cannot be opened (the encryption key that sealed it is gone, or the value was tampered with)", nil
	}
	if len(rt) == 0 {
		return nil, "the identity provider gave no refresh token at login (ask for offline_access), so the identity cannot be checked again", nil
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, "", err
	}
	cfg, err := c.oauth2(p)
	if err != nil {
		return nil, "", err
	}
	tok, err := cfg.TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: string(rt), Expiry: time.Unix(1, 0)}).Token()
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) && (rerr.ErrorCode == "invalid_grant" || rerr.ErrorCode == "unauthorized_client") {
		return nil, "the identity provider refused the refresh token (" + rerr.ErrorCode + ")", nil
	}
	if err != nil {
		return nil, "", err
	}
	return h.applyRefresh(ctx, c, p, k, tok, string(rt))
}
