package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/sso"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// SSOConfig are the flags single sign-on needs. The OIDC provider and the login page need the
// same three; they are defined once, here or with them.
type SSOConfig struct {
	// ConfigFile is keystore's configuration (auth.connectors), reloaded on change.
	ConfigFile string
	// EncryptionKeyFile seals what keystore keeps and reads back (the IdPs' refresh tokens).
	EncryptionKeyFile string
	// ExternalURL is the edge as browsers see it: callbacks are <url>/auth/<connector>/callback.
	ExternalURL string
}

func (s *SSOConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&s.ConfigFile, "config-file", "", "keystore's configuration (YAML: oidc.clients, auth.connectors), reloaded on change; empty: none")
	fs.StringVar(&s.EncryptionKeyFile, "encryption-key-file", "", "keys (base64, one a line, the first seals) that seal secrets keystore keeps in Redis; required with SSO connectors")
	fs.StringVar(&s.ExternalURL, "external-url", "", "the edge's https URL as browsers see it (SSO callbacks are <url>/auth/<connector>/callback)")
}

func (s *SSOConfig) check() error {
	if s.ExternalURL == "" {
		return nil
	}
	u, err := url.Parse(s.ExternalURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || strings.TrimSuffix(u.Path, "/") != "" {
		return fmt.Errorf("--external-url %q: want https://host[:port], without a path", s.ExternalURL)
	}
	return nil
}

// loginSSO is single sign-on as `keystore serve` runs it: the handler of the connectors'
// endpoints and what keeps it going (the configuration watcher, the identity refresh).
type loginSSO struct {
	h       *sso.Handler
	watcher *config.Watcher
}

// newSSO builds single sign-on from --config-file; nil when the file declares no connector.
func newSSO(c Config, keys *store.Store, people *users.Store, rdb redis.UniversalClient, log *slog.Logger, reg *prometheus.Registry) (*loginSSO, error) {
	w, err := config.NewWatcher(c.SSO.ConfigFile, 0, log)
	if err != nil {
		return nil, fmt.Errorf("--config-file: %w", err)
	}
	connectors := w.Current().Auth.Connectors
	if len(connectors) == 0 {
		return nil, nil
	}
	if c.SSO.EncryptionKeyFile == "" || c.SSO.ExternalURL == "" {
		return nil, errors.New("auth.connectors need --encryption-key-file (to seal the IdPs' refresh tokens) and --external-url (for the callbacks)")
	}
	box, err := sealed.Load(c.SSO.EncryptionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key-file: %w", err)
	}
	h, err := sso.New(sso.Options{
		Keys: keys, Users: sso.StoreUsers(people), Redis: rdb, Box: box, ExternalURL: c.SSO.ExternalURL,
		AdminGroup: c.AdminGroup, LoginTTL: c.LoginTTL, MaxLoginKeys: c.Quotas.MaxLoginKeysPerUser,
		Log: log.With("component", "sso"), Registerer: reg,
	}, connectors)
	if err != nil {
		return nil, err
	}
	w.Subscribe(func(cfg *config.Config) {
		if err := h.SetConnectors(cfg.Auth.Connectors); err != nil {
			log.Error("SSO connectors not reloaded; the last good ones stay in force", "error", err)
		}
	})
	return &loginSSO{h: h, watcher: w}, nil
}

// run follows the configuration file and refreshes SSO identities until ctx ends.
func (s *loginSSO) run(ctx context.Context) error {
	if s == nil {
		return nil
	}
	go s.watcher.Run(ctx)
	s.h.RunRefresher(ctx, 0)
	return nil
}

// handler serves /<connector>/login and /<connector>/callback (loginMux's fallback); nil
// without connectors.
func (s *loginSSO) handler() http.Handler {
	if s == nil {
		return nil
	}
	return s.h
}

// connectors lists the connectors of the configuration in force, for the login page's links.
func (s *loginSSO) connectors() func() []loginpage.Connector {
	if s == nil {
		return nil
	}
	return func() []loginpage.Connector {
		var out []loginpage.Connector
		for _, c := range s.watcher.Current().Auth.Connectors {
			name := c.DisplayName
			if name == "" {
				name = c.ID
			}
			out = append(out, loginpage.Connector{ID: c.ID, DisplayName: name})
		}
		return out
	}
}
