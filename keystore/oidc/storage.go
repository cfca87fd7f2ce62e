package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// storage is op.Storage over the Provider; op calls it for every step.
type storage struct{ p *Provider }

var _ op.Storage = (*storage)(nil)

// CreateAuthRequest stores a request after op has checked the client and redirect URI. PKCE
// is checked here, where a refusal still goes back to the (checked) redirect URI: op accepts
// plain, which a stolen code defeats (RFC 7636 §7.2), and does not make public clients use it.
func (s *storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c := s.p.configClient(r.ClientID)
	if c == nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client")
	}
	switch {
	case r.CodeChallenge != "" && r.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256 (plain is not supported)")
	case r.CodeChallenge == "" && c.Public():
		return nil, oidc.ErrInvalidRequest().WithDescription("this client is public: PKCE (code_challenge with code_challenge_method S256) is required")
	}
	a := &authRequest{
		Grant:        grant{ClientID: r.ClientID, RedirectURI: r.RedirectURI, Scopes: r.Scopes, Nonce: r.Nonce},
		State:        r.State,
		ResponseType: r.ResponseType, ResponseMode: r.ResponseMode,
		CodeChallenge: r.CodeChallenge, CodeChallengeMethod: r.CodeChallengeMethod,
	}
	if err := s.p.reqs.create(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.p.reqs.get(ctx, id)
}

// AuthRequestByCode finds a code's request. A code presented again revokes what it was
// exchanged for (RFC 6749 §4.1.2): whoever presents it twice, one of the two is not its client.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, err := s.p.reqs.byCode(ctx, code)
	switch {
	case errors.Is(err, errCodeReused):
		s.p.revokeIssued(ctx, a.ID)
	case err != nil && !errors.Is(err, errUnknown):
		storeFault(ctx)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.p.reqs.saveCode(ctx, id, code)
}

// DeleteAuthRequest is called once tokens are issued. A redeemed request is kept (until it
// expires) so that its code presented again is noticed.
func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	a, err := s.p.reqs.get(ctx, id)
	if err != nil || a.Redeemed {
		return nil
	}
	return s.p.opts.Redis.Del(ctx, authReqKey+id).Err()
}

func (s *storage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	id, _, exp, err := s.p.issue(ctx, r, false)
	return id, exp, err
}

func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, _ string) (string, string, time.Time, error) {
	return s.p.issue(ctx, r, true)
}

func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	return s.p.lookupRefresh(ctx, token)
}

// TerminateSession (end_session with an id_token_hint) revokes the user's refresh tokens of
// that client. The login pages' session is the user's to end at /auth/.
func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	if userID == "" || clientID == "" {
		return nil
	}
	all, err := s.p.opts.Keys.List(ctx)
	if err != nil {
		return err
	}
	for _, k := range all {
		if k.Spec.Type == v1.AccessKeyTypeOIDCRefreshToken && k.Spec.User == userID && k.Spec.OIDCProvider != nil && k.Spec.OIDCProvider.ClientID == clientID {
			if _, err := s.p.opts.Keys.DeleteObject(ctx, k.Name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// RevokeToken revokes a refresh token (its key is deleted) or an access token (its record is,
// so userinfo refuses it; the JWT itself lives until it expires). RFC 7009: an unknown token
// is no error; another client's token is.
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *oidc.Error {
	if name, ok := strings.CutPrefix(tokenOrID, refreshTokenIDPrefix); ok {
		k, err := s.p.opts.Keys.Get(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
		if k.Spec.OIDCProvider == nil || k.Spec.OIDCProvider.ClientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
		}
		if _, err := s.p.opts.Keys.DeleteObject(ctx, name, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return oidc.ErrServerError().WithParent(err)
		}
		return nil
	}
	g, err := s.p.accessGrant(ctx, tokenOrID)
	if errors.Is(err, errUnknown) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if g.ClientID != clientID {
		return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
	}
	if err := s.p.opts.Redis.Del(ctx, tokenKey+tokenOrID).Err(); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// GetRefreshTokenInfo names a refresh token for RevokeToken; anything else is
// op.ErrInvalidRefreshToken, and op tries it as an access token.
func (s *storage) GetRefreshTokenInfo(ctx context.Context, _ string, token string) (string, string, error) {
	k, err := s.p.opts.Keys.Lookup(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", op.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	if k.Spec.Type != v1.AccessKeyTypeOIDCRefreshToken {
		// Another kind of key: revoking it here is not this endpoint's business.
		return "", "", op.ErrInvalidRefreshToken
	}
	return k.Spec.User, refreshTokenIDPrefix + k.Name, nil
}

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	cur, _, err := s.p.ring.keys(ctx)
	if err != nil {
		return nil, err
	}
	return cur, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet is the JWKS: public keys only.
func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	_, all, err := s.p.ring.keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(all))
	for i, k := range all {
		out[i] = publicKey{k}
	}
	s.p.metrics.published.Set(float64(len(all)))
	return out, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, err := s.p.clientByID(id)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(err)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	return s.p.checkSecret(id, secret)
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated by op: SetUserinfoFromRequest does it
}

// SetUserinfoFromRequest fills the ID token's claims.
func (s *storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	who, err := s.p.personOf(ctx, r)
	if err != nil {
		return err
	}
	setUserinfo(info, who, scopes)
	return nil
}

// SetUserinfoFromToken answers the userinfo endpoint: the access token must not be revoked,
// and its user is judged again.
func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	g, err := s.p.accessGrant(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("access token revoked or expired")
	}
	who, err := s.p.resolve(ctx, *g)
	if err != nil {
		return err
	}
	setUserinfo(info, who, g.Scopes)
	return nil
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, r *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	g, err := s.p.accessGrant(ctx, tokenID)
	if err != nil || g.ClientID != clientID {
		return errors.New("inactive") // op answers active: false
	}
	who, err := s.p.resolve(ctx, *g)
	if err != nil {
		return err
	}
	info := new(oidc.UserInfo)
	setUserinfo(info, who, g.Scopes)
	r.SetUserInfo(info)
	r.Scope = g.Scopes
	r.ClientID = g.ClientID
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest puts the user's name and groups in the access token.
func (s *storage) GetPrivateClaimsFromRequest(ctx context.Context, r op.TokenRequest, scopes []string) (map[string]any, error) {
	ir, ok := r.(op.IDTokenRequest)
	if !ok {
		return nil, nil
	}
	who, err := s.p.personOf(ctx, ir)
	if err != nil {
		return nil, err
	}
	claims := map[string]any{"preferred_username": who.Name}
	if hasScope(scopes, scopeGroups) {
		claims["groups"] = nonNil(who.Groups)
	}
	return claims, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s *storage) Health(ctx context.Context) error { return s.p.opts.Redis.Ping(ctx).Err() }

// accessGrant is the grant an access token was issued from, while it lives and is not
// revoked.
func (p *Provider) accessGrant(ctx context.Context, id string) (*grant, error) {
	data, err := p.opts.Redis.Get(ctx, tokenKey+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errUnknown
	}
	if err != nil {
		return nil, err
	}
	var g grant
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, err
	}
	return &g, nil
}
