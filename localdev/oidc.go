package localdev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
)

// DemoOIDCClient is the OIDC provider's demo client in `make run`: public (no secret, so PKCE),
// redirecting to a loopback port as a CLI does (kubectl oidc-login listens on 8000).
const DemoOIDCClient = "keygate-demo"

// demoOIDCConfig is keystore's --config-file in `make run`.
const demoOIDCConfig = `oidc:
  clients:
  - name: keygate demo CLI
    clientId: ` + DemoOIDCClient + `
    redirectURIs: ["http://127.0.0.1:8000/callback", "http://localhost:8000"]
`

// oidcArgs turns keystore's OIDC provider on: the edge's URL (pickEdgeAddrs has set it: the
// issuer), an encryption key file and the configuration file with the demo client (and the
// test IdP's connector with Options.SSO).
func (p *Platform) oidcArgs(ctx context.Context) ([]string, error) {
	if p.EdgeURL == "" {
		return nil, errors.New("localdev: the edge's address must be picked before keystore starts (its OIDC issuer)")
	}
	keyFile, configFile := p.path("pki", "encryption.key"), p.path("keystore-config.yaml")
	// A key file's line: 32 random bytes, base64 (keystore/sealed), as openssl rand -base64 32.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	config := demoOIDCConfig
	if p.opts.SSO {
		connector, err := p.startIdP(ctx)
		if err != nil {
			return nil, err
		}
		config += connector
	}
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		return nil, err
	}
	return []string{"--oidc-address", p.keystoreAddrs.oidc, "--external-url", p.EdgeURL,
		"--encryption-key-file", keyFile, "--config-file", configFile}, nil
}
