package sso

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keygate-dev/keygate/keystore/config"
)

// connector is one configured IdP. Discovery is lazy and retried until it succeeds, so an IdP
// that is down when keystore starts (or reloads) breaks only its own logins, and only while
// it is down.
type connector struct {
	id       string
	o        *config.OIDCConnector
	client   *http.Client
	callback string

	mu       sync.Mutex
	provider *oidc.Provider
}

func newConnector(c config.Connector, externalURL string) (*connector, error) {
	if c.OIDC == nil {
		return nil, errors.New("oidc: required")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.OIDC.CAFile != "" {
		pem, err := os.ReadFile(c.OIDC.CAFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificate", c.OIDC.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &connector{
		id: c.ID, o: c.OIDC,
		client:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
		callback: externalURL + "/auth/" + c.ID + "/callback",
	}, nil
}

// ctx carries the connector's HTTP client to go-oidc and x/oauth2.
func (c *connector) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, c.client)
}

// discover returns the IdP's provider, fetching its discovery document the first time.
func (c *connector) discover(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	// go-oidc keeps only the client of this context for its later key fetches.
	p, err := oidc.NewProvider(c.ctx(ctx), c.o.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", c.o.IssuerURL, err)
	}
	c.provider = p
	return p, nil
}

// oauth2 is the OAuth client of the connector. The secret is read from its file at each use,
// so a rotated Secret is used without a restart.
func (c *connector) oauth2(p *oidc.Provider) (*oauth2.Config, error) {
	data, err := os.ReadFile(c.o.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("clientSecretFile: %w", err)
	}
	secret := strings.TrimRight(string(data), "\r\n")
	if secret == "" {
		return nil, fmt.Errorf("clientSecretFile %s is empty", c.o.ClientSecretFile)
	}
	return &oauth2.Config{
		ClientID: c.o.ClientID, ClientSecret: secret, Endpoint: p.Endpoint(),
		RedirectURL: c.callback, Scopes: c.o.ScopeList(),
	}, nil
}

// verifier checks ID tokens: signature (the IdP's JWKS), issuer, audience (our client id) and
// expiry. The nonce is the caller's to check.
func (c *connector) verifier(p *oidc.Provider) *oidc.IDTokenVerifier {
	return p.Verifier(&oidc.Config{ClientID: c.o.ClientID})
}

// claims verifies tok's ID token and returns its claims, filled in from userinfo where the
// ID token lacks the username or groups claims (IdPs such as Okta send them only there). A
// refresh may come without an ID token: then userinfo alone, for the subject want.
func (c *connector) claims(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, ru rules, want string) (map[string]any, *oidc.IDToken, error) {
	ctx = c.ctx(ctx)
	claims := map[string]any{}
	var idt *oidc.IDToken
	raw, _ := tok.Extra("id_token").(string)
	switch {
	case raw != "":
		var err error
		if idt, err = c.verifier(p).Verify(ctx, raw); err != nil {
			return nil, nil, &invalidToken{err}
		}
		if err := idt.Claims(&claims); err != nil {
			return nil, nil, &invalidToken{err}
		}
	case want == "":
		return nil, nil, &invalidToken{errors.New("the token response has no id_token")}
	default:
		claims["sub"] = want
	}
	_, hasName := claims[claimOr(ru.o.UsernameClaim, config.DefaultUsernameClaim)]
	_, hasGroups := claims[ru.groupsClaim()]
	if (hasName && hasGroups) || p.UserInfoEndpoint() == "" {
		return claims, idt, nil
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, nil, fmt.Errorf("userinfo: %w", err)
	}
	if ui.Subject != claims["sub"] {
		// OpenID Connect Core 5.3.4: a userinfo answer for another subject must not be used.
		return nil, nil, &invalidToken{fmt.Errorf("userinfo is for subject %q, the ID token for %q", ui.Subject, claims["sub"])}
	}
	var extra map[string]any
	if err := ui.Claims(&extra); err != nil {
		return nil, nil, fmt.Errorf("userinfo: %w", err)
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return claims, idt, nil
}

// invalidToken is an ID token (or userinfo answer) that does not verify: an attack or a
// misconfigured IdP, never a reason to retry.
type invalidToken struct{ err error }

func (e *invalidToken) Error() string { return "invalid ID token: " + e.err.Error() }
func (e *invalidToken) Unwrap() error { return e.err }
