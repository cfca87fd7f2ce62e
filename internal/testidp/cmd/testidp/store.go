package main

import (
	"context"
	"errors"
	"sync"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// store is zitadel's example storage with groups and revocation: the two things an SSO test
// changes at the IdP while keygate runs.
type store struct {
	*storage.Storage
	mu      sync.Mutex
	groups  map[string][]string // user id → groups claim
	revoked map[string]bool     // user id → refresh tokens refused
}

func newStore(s *storage.Storage) *store {
	return &store{Storage: s, groups: map[string][]string{}, revoked: map[string]bool{}}
}

// claimsClient puts the userinfo claims (preferred_username, email) into the ID token too, as
// Dex, Keycloak and Entra ID do; the example's clients keep them for the userinfo endpoint.
type claimsClient struct{ op.Client }

func (claimsClient) IDTokenUserinfoClaimsAssertion() bool { return true }

// GetClientByClientID implements op.Storage.
func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return claimsClient{c}, nil
}

// SetUserinfoFromRequest implements op.CanSetUserinfoFromRequest: the ID token's claims.
func (s *store) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	s.addGroups(ui, req.GetSubject())
	return nil
}

// SetUserinfoFromToken implements op.Storage: the userinfo endpoint's claims.
func (s *store) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	s.addGroups(ui, ui.Subject)
	return nil
}

func (s *store) addGroups(ui *oidc.UserInfo, subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.groups[subject]; ok {
		ui.AppendClaims("groups", g)
	}
}

// TokenRequestByRefreshToken implements op.Storage; op answers its error with invalid_grant.
func (s *store) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	req, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked[req.GetSubject()] {
		return nil, errors.New("refresh token revoked")
	}
	return req, nil
}
