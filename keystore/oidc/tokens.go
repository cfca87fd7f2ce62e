package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/store"
)

// issue makes what a token response holds besides the JWTs op signs: the access token's id
// (its record in Redis, which userinfo and revocation read) and, when asked, a refresh token.
// For a code, the user is judged again and the code redeemed, once.
func (p *Provider) issue(ctx context.Context, r op.TokenRequest, withRefresh bool) (string, string, time.Time, error) {
	var g grant
	var authID, refresh, refreshName string
	switch t := r.(type) {
	case *authRequest:
		if t.Grant.ClientID == config.CLIClientID {
			// Its codes become Login keys at /auth/oidc/login only (cli.go).
			return "", "", time.Time{}, oidc.ErrUnauthorizedClient().WithDescription("codes of %s are redeemed at /auth/oidc/login", config.CLIClientID)
		}
		who, err := p.resolve(ctx, t.Grant)
		if err != nil {
			return "", "", time.Time{}, asGrantError(err)
		}
		t.person = who
		if err := p.reqs.redeem(ctx, t.ID); err != nil {
			if errors.Is(err, errCodeReused) {
				p.revokeIssued(ctx, t.ID)
			}
			return "", "", time.Time{}, asGrantError(err)
		}
		g, authID = t.Grant, t.ID
		if withRefresh {
			plain, k, err := p.issueRefresh(ctx, g)
			if err != nil {
				return "", "", time.Time{}, err
			}
			refresh, refreshName = plain, k.Name
		}
	case *refreshRequest:
		plain, _, err := p.rotateRefresh(ctx, t)
		if err != nil {
			return "", "", time.Time{}, asGrantError(err)
		}
		g, refresh = t.grant, plain
		g.Scopes = t.scopes
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	id, exp, err := p.recordAccessToken(ctx, g)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if authID != "" {
		if err := p.noteIssued(ctx, authID, id, refreshName); err != nil {
			return "", "", time.Time{}, err
		}
	}
	return id, refresh, exp, nil
}

// recordAccessToken stores the grant of a new access token under its id (the JWT's jti).
func (p *Provider) recordAccessToken(ctx context.Context, g grant) (string, time.Time, error) {
	id := randomID()
	exp := p.opts.Now().Add(p.opts.AccessTokenTTL)
	data, err := json.Marshal(g)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := p.opts.Redis.Set(ctx, tokenKey+id, data, p.opts.AccessTokenTTL).Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("record access token: %w", err)
	}
	return id, exp, nil
}

// noteIssued records on a code's request what was issued from it; if the code was presented
// again meanwhile, the new tokens are revoked at once.
func (p *Provider) noteIssued(ctx context.Context, authID, accessID, refreshName string) error {
	a, err := p.reqs.update(ctx, authID, 0, func(a *authRequest) error {
		a.AccessTokens = append(a.AccessTokens, accessID)
		if refreshName != "" {
			a.RefreshKey = refreshName
		}
		return nil
	})
	if err != nil {
		return err
	}
	if a.Reused {
		p.revokeIssued(ctx, authID)
		return oidc.ErrInvalidGrant().WithDescription("authorization code already used")
	}
	return nil
}

// revokeIssued revokes what a code was exchanged for, as far as it can: the refresh token
// (its key, unless already rotated) and the access tokens' records (userinfo refuses them;
// the JWTs themselves expire within AccessTokenTTL).
func (p *Provider) revokeIssued(ctx context.Context, authID string) {
	a, err := p.reqs.update(ctx, authID, 0, func(a *authRequest) error { a.Reused = true; return nil })
	if err != nil {
		p.log.Error("authorization code used again; its tokens could not be revoked", "error", err)
		return
	}
	for _, id := range a.AccessTokens {
		if err := p.opts.Redis.Del(ctx, tokenKey+id).Err(); err != nil {
			p.log.Error("revoke access token", "error", err)
		}
	}
	if a.RefreshKey != "" {
		if _, err := p.opts.Keys.DeleteObject(ctx, a.RefreshKey, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.log.Error("revoke refresh token", "key", a.RefreshKey, "error", err)
		}
	}
	p.log.Warn("authorization code used again: the tokens issued from it are revoked", "client", a.Grant.ClientID, "user", a.Grant.User, "refreshKey", a.RefreshKey)
}

// asGrantError is err as the token endpoint answers it: a refusal or a spent code is
// invalid_grant; anything else stays what it is (server_error).
func asGrantError(err error) error {
	var r *errRefused
	if errors.As(err, &r) {
		return oidc.ErrInvalidGrant().WithDescription("%s", r.why)
	}
	if errors.Is(err, errCodeReused) || errors.Is(err, errUnknown) {
		return oidc.ErrInvalidGrant().WithDescription("%s", err.Error())
	}
	return err
}

// personOf is the user of a token request, judged once per response.
func (p *Provider) personOf(ctx context.Context, r op.IDTokenRequest) (*person, error) {
	var g grant
	switch t := r.(type) {
	case *authRequest:
		if t.person != nil {
			return t.person, nil
		}
		g = t.Grant
	case *refreshRequest:
		if t.person != nil {
			return t.person, nil
		}
		g = t.grant
	default:
		return nil, oidc.ErrUnsupportedGrantType()
	}
	who, err := p.resolve(ctx, g)
	if err != nil {
		return nil, asGrantError(err)
	}
	return who, nil
}

// setUserinfo writes who's claims that scopes ask for.
func setUserinfo(info *oidc.UserInfo, who *person, scopes []string) {
	info.Subject = who.Name
	if hasScope(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = who.Name
		info.Name = who.DisplayName
	}
	if hasScope(scopes, oidc.ScopeEmail) && who.Email != "" {
		info.Email = who.Email
		info.EmailVerified = oidc.Bool(who.EmailVerified)
	}
	if hasScope(scopes, scopeGroups) {
		info.AppendClaims("groups", nonNil(who.Groups))
	}
}

func hasScope(scopes []string, s string) bool { return slices.Contains(scopes, s) }

// nonNil makes an empty list [] in JSON: "no groups", not "groups unknown".
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
