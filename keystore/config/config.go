// Package config is keystore's configuration file (--config-file): the clients of the OIDC
// provider (oidc.clients, as Loft's config names them) and the single sign-on connectors
// (auth.connectors). keystore reads it at start and again whenever it changes, so a client or a
// connector is added without a restart.
//
//	oidc:
//	  clients:
//	  - name: Argo CD
//	    clientId: argocd
//	    clientSecretHash: $2a$12$...   # keystore hash-secret < secret
//	    redirectURIs: [https://argocd.example.com/auth/callback]
//	auth:
//	  connectors:
//	  - id: okta
//	    displayName: Okta
//	    oidc: {issuerURL: https://example.okta.com, clientId: ..., clientSecretFile: ...}
//
// A file that does not parse or validate is refused with a message naming the field; while
// serving, the last good configuration stays in force and the refusal is logged and counted
// (Watcher).
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the whole file. Each section is validated by Validate.
type Config struct {
	OIDC OIDC `json:"oidc"`
	Auth Auth `json:"auth"`
}

// Load reads and validates a file. An empty path is the empty configuration: no OIDC clients,
// no connectors.
func Load(path string) (*Config, error) {
	if path == "" {
		return &Config{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads and validates the contents of a file. Unknown fields are refused: a misspelt
// field would otherwise be silently ignored.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every section and returns every problem found, one per line.
func (c *Config) Validate() error {
	var errs []string
	errs = append(errs, c.OIDC.validate()...)
	errs = append(errs, c.Auth.validate()...)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
