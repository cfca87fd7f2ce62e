package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/sso"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// checkExternalURL checks --external-url, which single sign-on (its callbacks) and the OIDC
// provider (its issuer) need: the edge as browsers see it.
func checkExternalURL(external string) error {
	if external == "" {
		return nil
	}
	u, err := url.Parse(external)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || strings.TrimSuffix(u.Path, "/") != "" {
		return fmt.Errorf("--external-url %q: want https://host[:port], without a path", external)
	}
	return nil
}

// loginSSO is single sign-on as `keystore serve` runs it: the handler of the connectors'
// endpoints and what keeps it going (the configuration watcher, the identity refresh).
type loginSSO struct {
	h       *sso.Handler
	watcher *config.Watcher
	every   time.Duration // --sso-refresh-period
}

// newSSO builds single sign-on from the connectors of --config-file; nil when it declares
// none (connectors added later need a restart; those declared follow the file). box seals the
// IdPs' refresh tokens; requests are the OIDC provider's (nil: none).
func newSSO(c Config, keys *store.Store, people *users.Store, rdb redis.UniversalClient, w *config.Watcher, box *sealed.Box,
	requests session.AuthRequests, log *slog.Logger, reg *prometheus.Registry) (*loginSSO, error) {
	connectors := w.Current().Auth.Connectors
	if len(connectors) == 0 {
		return nil, nil
	}
	if box == nil || c.ExternalURL == "" {
		return nil, errors.New("auth.connectors need --encryption-key-file (to seal the IdPs' refresh tokens) and --external-url (for the callbacks)")
	}
	h, err := sso.New(sso.Options{
		Keys: keys, Users: sso.StoreUsers(people), Redis: rdb, Box: box, ExternalURL: c.ExternalURL, AuthRequests: requests,
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
	return &loginSSO{h: h, watcher: w, every: c.SSORefreshPeriod}, nil
}

// run refreshes SSO identities until ctx ends (Run runs the configuration's watcher).
func (s *loginSSO) run(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.h.RunRefresher(ctx, s.every)
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
