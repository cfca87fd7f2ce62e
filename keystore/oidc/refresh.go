package oidc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// Refresh tokens are OwnedAccessKeys of type OIDCRefreshToken: the plain key is the refresh
// token, Redis holds its digest, kubectl lists them, and deleting one revokes it. extauthz
// refuses them as bearer keys, so a refresh token opens nothing at the edge.

// refreshRequest is a refresh token presented at the token endpoint.
type refreshRequest struct {
	key    *v1.OwnedAccessKey
	grant  grant
	scopes []string // what this refresh asks for: the grant's, or fewer
	person *person
}

func (r *refreshRequest) GetAMR() []string       { return nil }
func (r *refreshRequest) GetAudience() []string  { return []string{r.grant.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time { return r.grant.AuthTime }
func (r *refreshRequest) GetClientID() string    { return r.grant.ClientID }
func (r *refreshRequest) GetScopes() []string    { return r.scopes }
func (r *refreshRequest) GetSubject() string     { return r.grant.User }
func (r *refreshRequest) SetCurrentScopes(s []string) {
	r.scopes = s
}

// refreshTokenID names a refresh token in revocation: its key's name.
const refreshTokenIDPrefix = "rt:"

// lookupRefresh finds the key of a refresh token and judges it: a refresh token key, enabled,
// not expired, and its user still allowed tokens. Nothing is changed: a refused refresh
// loses nothing.
func (p *Provider) lookupRefresh(ctx context.Context, plain string) (*refreshRequest, error) {
	k, err := p.opts.Keys.Lookup(ctx, plain)
	if errors.Is(err, store.ErrNotFound) {
		return nil, p.refused("unknown")
	}
	if err != nil {
		storeFault(ctx)
		return nil, err
	}
	switch {
	case k.Spec.Type != v1.AccessKeyTypeOIDCRefreshToken || k.Spec.OIDCProvider == nil:
		return nil, p.refused("not a refresh token")
	case k.Spec.Disabled:
		return nil, p.refused("disabled")
	case accesskey.Expired(k, p.opts.Now(), 0):
		return nil, p.refused("expired")
	}
	g := grantOf(k)
	who, err := p.resolve(ctx, g)
	if err != nil {
		var r *errRefused
		if errors.As(err, &r) {
			p.metrics.refused.WithLabelValues(refusedLabel(r.why)).Inc()
			p.log.Info("refresh refused", "key", k.Name, "user", g.User, "client", g.ClientID, "reason", r.why)
		} else {
			storeFault(ctx)
		}
		return nil, err
	}
	return &refreshRequest{key: k, grant: g, scopes: g.Scopes, person: who}, nil
}

// refused counts and returns a refusal of a refresh token itself.
func (p *Provider) refused(why string) error {
	p.metrics.refused.WithLabelValues(refusedLabel(why)).Inc()
	return &errRefused{"refresh token " + why}
}

// refusedLabel keeps the metric's label values few: the owner problems and the token's own.
func refusedLabel(why string) string {
	return strings.ReplaceAll(why, " ", "_")
}

// AuthTimeAnnotation keeps, on a refresh token key, when its user signed in: the auth_time
// of every ID token refreshed from it (OpenID Connect Core §12.2), across rotations.
const AuthTimeAnnotation = "keygate.dev/oidc-auth-time"

func grantOf(k *v1.OwnedAccessKey) grant {
	o := k.Spec.OIDCProvider
	authTime := k.CreationTimestamp.Time
	if t, err := time.Parse(time.RFC3339, k.Annotations[AuthTimeAnnotation]); err == nil {
		authTime = t
	}
	return grant{
		ClientID: o.ClientID, RedirectURI: o.RedirectURI, Nonce: o.Nonce, Scopes: strings.Fields(o.Scopes),
		User: k.Spec.User, OwnerUID: accesskey.OwnerUID(k), Parent: k.Spec.Parent, AuthTime: authTime,
	}
}

// maxNameAttempts bounds the retries when a generated key name is taken.
const maxNameAttempts = 5

// issueRefresh creates the refresh token key of g. A user has at most MaxRefreshTokens live
// ones (counted apart from other keys); past it the oldest is deleted, as logins do: refusing
// would lock a user out because of stale sessions.
func (p *Provider) issueRefresh(ctx context.Context, g grant) (string, *v1.OwnedAccessKey, error) {
	for range maxNameAttempts {
		k := &v1.OwnedAccessKey{
			ObjectMeta: metav1.ObjectMeta{Name: refreshKeyName(g.ClientID, g.User), Annotations: map[string]string{}},
			Spec: v1.OwnedAccessKeySpec{
				DisplayName: "OIDC refresh token of " + g.ClientID,
				Description: "Refresh token the OIDC provider issued to client " + g.ClientID + "; delete it to revoke it.",
				User:        g.User,
				TTL:         int64(p.opts.RefreshTokenTTL / time.Second),
				Type:        v1.AccessKeyTypeOIDCRefreshToken,
				Parent:      g.Parent,
				OIDCProvider: &v1.AccessKeyOIDCProvider{
					ClientID: g.ClientID, Nonce: g.Nonce, RedirectURI: g.RedirectURI, Scopes: strings.Join(g.Scopes, " "),
				},
			},
		}
		accesskey.SetOwnerUID(k, g.OwnerUID)
		k.Annotations[AuthTimeAnnotation] = g.AuthTime.UTC().Format(time.RFC3339)
		q := store.PerOwner(k, p.opts.MaxRefreshTokens, p.opts.Now())
		q.EvictOldest = true
		plain, stored, evicted, err := p.opts.Keys.CreateWithinQuota(ctx, k, q)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue
		}
		if len(evicted) > 0 {
			p.log.Info("deleted the user's oldest OIDC refresh tokens to stay within the bound", "user", g.User, "keys", evicted)
		}
		return plain, stored, err
	}
	return "", nil, fmt.Errorf("no free key name for user %s after %d attempts", g.User, maxNameAttempts)
}

// rotateRefresh replaces the refresh token of r: the old key is deleted first, and only if it
// is still the one judged, so of two refreshes with one token exactly one succeeds.
func (p *Provider) rotateRefresh(ctx context.Context, r *refreshRequest) (string, *v1.OwnedAccessKey, error) {
	_, err := p.opts.Keys.DeleteObject(ctx, r.key.Name, r.key.ResourceVersion)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return "", nil, p.refused("already used")
	}
	if err != nil {
		return "", nil, err
	}
	return p.issueRefresh(ctx, r.grant)
}

const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// refreshKeyName is oidc-<client>-<user>-<5 random>, a DNS-1123 label: kubectl get
// ownedaccesskeys tells at a glance which client holds it.
func refreshKeyName(client, user string) string {
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = nameAlphabet[rand.IntN(len(nameAlphabet))]
	}
	stem := stemOf(client, 20) + "-" + stemOf(user, 30)
	return "oidc-" + strings.Trim(stem, "-") + "-" + string(suffix)
}

// stemOf makes s a run of [a-z0-9-] of at most max characters.
func stemOf(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if b.Len() >= max {
			break
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	if out := strings.Trim(b.String(), "-"); out != "" {
		return out
	}
	return "x"
}
