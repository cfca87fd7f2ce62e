package oidc

import (
	"context"
	"errors"
	"fmt"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/users"
)

// The keygate CLI signs in through the browser as kubelogin does (RFC 8252): it opens
// /oidc/authorize as the built-in public client config.CLIClientID, with PKCE and a loopback
// redirect URI on whatever port it listens, and trades the code at the login endpoint
// POST /auth/oidc/login (keystore/auth) for a Login key. That client's codes are redeemed
// there and nowhere else: the token endpoint refuses them, so the CLI never holds JWTs or an
// OIDC refresh token, and no other client's code becomes a Login key.

// CLIRedirectURI is the built-in client's redirect URI; any port of it is allowed (RFC 8252
// §7.3), and so is [::1].
const CLIRedirectURI = "http://127.0.0.1/callback"

// cliClient is the built-in client. It is not in the configuration file: every provider has it.
var cliClient = config.Client{
	Name:         "the keygate CLI",
	ClientID:     config.CLIClientID,
	RedirectURIs: []string{CLIRedirectURI, "http://[::1]/callback"},
}

// configClient is the client with id: the built-in CLI client or a configured one, as the
// configuration in force has it; nil if none.
func (p *Provider) configClient(id string) *config.Client {
	if id == config.CLIClientID {
		c := cliClient
		return &c
	}
	return p.opts.Clients().Client(id)
}

// CLIGrant is who signed in to the CLI, as the provider judged them at redemption.
type CLIGrant struct {
	// User is the user of the store, enabled and the one who signed in (same UID); nil for a
	// single sign-on identity, which the store does not have.
	User *users.User
	// Name is the signed-in user's name (spec.user); Parent the browser session's Login key.
	Name, Parent string
}

// ErrCLICode is a code RedeemCLICode refuses: unknown, expired, used, another client's, another
// redirect URI's, or a wrong verifier. The caller says no more than that.
var ErrCLICode = errors.New("invalid, expired or already used authorization code")

// RedeemCLICode redeems a code of the CLI client once, checking its redirect URI and PKCE
// verifier as the token endpoint would, and judges its user now. A code presented again
// revokes nothing further (the CLI client gets no tokens) but stays refused. Errors wrap
// ErrCLICode (the client's fault), a refusal of the user (*errRefused, message for logs), or
// a store failure.
func (p *Provider) RedeemCLICode(ctx context.Context, code, verifier, redirectURI string) (*CLIGrant, error) {
	a, err := p.reqs.byCode(ctx, code)
	switch {
	case errors.Is(err, errUnknown) || errors.Is(err, errCodeReused):
		return nil, fmt.Errorf("%w: %v", ErrCLICode, err)
	case err != nil:
		return nil, err
	case a.Grant.ClientID != config.CLIClientID:
		// Another client's code is that client's to redeem: it is not spent here.
		return nil, fmt.Errorf("%w: issued to client %q", ErrCLICode, a.Grant.ClientID)
	case a.Grant.RedirectURI != redirectURI:
		return nil, fmt.Errorf("%w: redirect URI differs from the authorization request's", ErrCLICode)
	case a.CodeChallengeMethod != oidc.CodeChallengeMethodS256 || !oidc.VerifyCodeChallenge(a.GetCodeChallenge(), verifier):
		return nil, fmt.Errorf("%w: wrong code verifier", ErrCLICode)
	}
	if err := p.reqs.redeem(ctx, a.ID); err != nil {
		if errors.Is(err, errCodeReused) {
			return nil, fmt.Errorf("%w: %v", ErrCLICode, err)
		}
		return nil, err
	}
	_, u, err := p.owner(ctx, a.Grant.User)
	if err != nil {
		return nil, err
	}
	if _, err := p.resolve(ctx, a.Grant); err != nil {
		return nil, err
	}
	return &CLIGrant{User: u, Name: a.Grant.User, Parent: a.Grant.Parent}, nil
}

// CLICodes is the provider as the login endpoint POST /auth/oidc/login redeems codes with.
func (p *Provider) CLICodes() auth.CLICodes { return cliCodes{p} }

type cliCodes struct{ p *Provider }

// RedeemCLICode makes the provider's refusals auth's: a bad code and a user who may not sign in
// are both the client's 401; anything else is the stores' failure.
func (c cliCodes) RedeemCLICode(ctx context.Context, code, verifier, redirectURI string) (*auth.CLISignIn, error) {
	g, err := c.p.RedeemCLICode(ctx, code, verifier, redirectURI)
	var r *errRefused
	switch {
	case errors.Is(err, ErrCLICode) || errors.As(err, &r):
		return nil, fmt.Errorf("%w: %v", auth.ErrCodeRefused, err)
	case err != nil:
		return nil, err
	}
	return &auth.CLISignIn{User: g.User, Name: g.Name, Session: g.Parent}, nil
}
