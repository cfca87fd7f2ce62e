package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/sealed"
	"github.com/keygate-dev/keygate/keystore/sso"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// OIDCLifetimes are the OIDC provider's lifetimes.
type OIDCLifetimes struct {
	AccessTokenTTL, IDTokenTTL, RefreshTokenTTL, KeyRotation time.Duration
}

func (c *Config) registerOIDC(fs *flag.FlagSet) {
	fs.StringVar(&c.ExternalURL, "external-url", "", "the edge's public URL (https://edge.example.com): the OIDC issuer is it plus /oidc, the login page it plus /auth/login")
	fs.StringVar(&c.OIDCAddress, "oidc-address", "", "HTTPS address of the OIDC provider (the edge's /oidc/ upstream); empty: no provider")
	fs.StringVar(&c.ConfigFile, "config-file", "", "configuration file (oidc.clients, auth.connectors), read again when it changes; empty: none")
	fs.StringVar(&c.EncryptionKeyFile, "encryption-key-file", "", "key file (one or more lines of 32 random bytes, base64: openssl rand -base64 32) sealing what keystore keeps encrypted in Redis, such as the OIDC signing keys; required with --oidc-address")
	fs.DurationVar(&c.OIDC.AccessTokenTTL, "oidc-access-token-ttl", oidc.DefaultAccessTokenTTL, "lifetime of the OIDC provider's access tokens (JWTs)")
	fs.DurationVar(&c.OIDC.IDTokenTTL, "oidc-id-token-ttl", oidc.DefaultIDTokenTTL, "lifetime of the OIDC provider's ID tokens")
	fs.DurationVar(&c.OIDC.RefreshTokenTTL, "oidc-refresh-token-ttl", oidc.DefaultRefreshTokenTTL, "lifetime of an OIDC refresh token (an OIDCRefreshToken access key); each use replaces it with a new one")
	fs.DurationVar(&c.SSORefreshPeriod, "sso-refresh-period", sso.DefaultRefreshEvery, "how often single sign-on keys are checked for an identity refresh; each connector's refreshInterval says when a key is due, so this bounds how late past it a refresh can be")
	fs.DurationVar(&c.OIDC.KeyRotation, "oidc-key-rotation", oidc.DefaultKeyRotation, "age at which the OIDC signing key is replaced; the old one stays published until its tokens expire")
}

// checkOIDC checks the provider's flags; they matter only with --oidc-address.
func (c *Config) checkOIDC() error {
	if c.OIDCAddress == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.OIDCAddress); err != nil {
		return fmt.Errorf("--oidc-address %q: want host:port", c.OIDCAddress)
	}
	if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("--external-url %q: the OIDC provider needs the edge's public URL, https://host[:port] (the issuer is it plus /oidc)", c.ExternalURL)
	}
	if c.EncryptionKeyFile == "" {
		return errors.New("--encryption-key-file is required with --oidc-address: the OIDC signing keys are kept sealed with it in Redis (make one: openssl rand -base64 32 > FILE, mounted from a Secret)")
	}
	for name, d := range map[string]time.Duration{"--oidc-access-token-ttl": c.OIDC.AccessTokenTTL, "--oidc-id-token-ttl": c.OIDC.IDTokenTTL,
		"--oidc-refresh-token-ttl": c.OIDC.RefreshTokenTTL, "--oidc-key-rotation": c.OIDC.KeyRotation} {
		if d < time.Second {
			return fmt.Errorf("%s %s: want at least 1s", name, d)
		}
	}
	if c.OIDC.RefreshTokenTTL%time.Second != 0 {
		return fmt.Errorf("--oidc-refresh-token-ttl %s: want whole seconds (spec.ttl is in seconds)", c.OIDC.RefreshTokenTTL)
	}
	return nil
}

// oidcServer is the OIDC provider and its HTTPS server; nil, nil without --oidc-address.
func oidcServer(c Config, rdb redis.UniversalClient, keys *store.Store, people *users.Store, w *config.Watcher, box *sealed.Box, log *slog.Logger, reg *prometheus.Registry) (*oidc.Provider, *http.Server, error) {
	if c.OIDCAddress == "" {
		return nil, nil, nil
	}
	// op logs the requests it refuses to slog's default logger: make that the server's log, in
	// its format and at its level (nothing in those lines is a secret: keystore/oidc
	// TestSecretsStayOutOfLogs).
	slog.SetDefault(log.With("component", "oidc"))
	p, err := oidc.New(oidc.Options{
		ExternalURL: c.ExternalURL, Redis: rdb, Box: box, Keys: keys, Users: people,
		Clients:        func() *config.OIDC { return &w.Current().OIDC },
		AccessTokenTTL: c.OIDC.AccessTokenTTL, IDTokenTTL: c.OIDC.IDTokenTTL,
		RefreshTokenTTL: c.OIDC.RefreshTokenTTL, KeyRotation: c.OIDC.KeyRotation,
		MaxRefreshTokens: c.Quotas.MaxLoginKeysPerUser,
		Log:              log.With("component", "oidc"), Registerer: reg,
	})
	if err != nil {
		return nil, nil, err
	}
	srv, err := httpsServer(c, log, "OIDC provider", c.OIDCAddress, p, "")
	return p, srv, err
}

// loadBox loads --encryption-key-file, which seals the OIDC signing keys and the IdPs' refresh
// tokens; nil without the flag (checkOIDC and newSSO say when it is needed).
func loadBox(c Config) (*sealed.Box, error) {
	if c.EncryptionKeyFile == "" {
		return nil, nil
	}
	box, err := sealed.Load(c.EncryptionKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key-file: %w", err)
	}
	return box, nil
}

// newWatcher loads --config-file and counts its reloads in
// keygate_keystore_config_reloads_total{result="ok|error"}: a refused file leaves the last
// good one in force, which only the log and this metric tell.
func newWatcher(c Config, log *slog.Logger, reg prometheus.Registerer) (*config.Watcher, error) {
	w, err := config.NewWatcher(c.ConfigFile, 0, log)
	if err != nil {
		return nil, fmt.Errorf("--config-file: %w", err)
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keygate_keystore_config_reloads_total",
		Help: "Changes of --config-file read, by result: ok (in force) or error (refused; the last good one stays).",
	}, []string{"result"})
	if err := reg.Register(reloads); err != nil {
		return nil, err
	}
	w.OnReload = func(err error) {
		if err != nil {
			reloads.WithLabelValues("error").Inc()
			return
		}
		reloads.WithLabelValues("ok").Inc()
	}
	return w, nil
}
