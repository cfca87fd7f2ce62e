package oidc

import (
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/keystore/config"
)

// errUnknownClient is a client_id the configuration does not have.
var errUnknownClient = errors.New("unknown client")

// client is a configured client as op sees it.
type client struct {
	c        config.Client
	loginURL string // the login page, without the request id
	idTTL    time.Duration
}

// clientByID reads the configuration in force, so a reloaded file applies to the next request.
func (p *Provider) clientByID(id string) (*client, error) {
	c := p.configClient(id)
	if c == nil {
		return nil, errUnknownClient
	}
	return &client{c: *c, loginURL: p.loginURL, idTTL: p.opts.IDTokenTTL}, nil
}

// checkSecret compares a client's secret with its bcrypt hash. A public client has none to
// present, and a confidential one must present it.
func (p *Provider) checkSecret(id, secret string) error {
	c := p.configClient(id)
	if c == nil {
		return errUnknownClient
	}
	if c.Public() {
		return errors.New("public client: no secret to check")
	}
	if bcrypt.CompareHashAndPassword([]byte(c.ClientSecretHash), []byte(secret)) != nil {
		return errors.New("wrong client secret")
	}
	return nil
}

func (c *client) GetID() string                    { return c.c.ClientID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }

// ApplicationType: a public client is a native application (RFC 8252): op then lets its
// loopback redirect URIs use any port, as such an application listens where it can.
func (c *client) ApplicationType() op.ApplicationType {
	if c.c.Public() {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes: the code flow only; the implicit flows put tokens in URLs.
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string {
	return c.loginURL + "?authRequestID=" + url.QueryEscape(id)
}
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return c.idTTL }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(supportedScopes, scope) }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims in the ID token even with
// an access token: kube-apiserver reads the user and groups from the ID token alone.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

// supportedScopes are the scopes the provider knows; groups, as Dex has it, asks for the
// groups claim.
var supportedScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess, scopeGroups}

const scopeGroups = "groups"
