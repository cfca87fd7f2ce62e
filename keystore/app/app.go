// Package app is `keystore serve`: the management API (management.loft.sh/v1 with
// k8s.io/apiserver) and the login endpoints, both behind the edge, over Redis.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/ops"
	"github.com/keygate-dev/keygate/internal/redisflags"
	"github.com/keygate-dev/keygate/internal/redismetrics"
	"github.com/keygate-dev/keygate/internal/tlsfiles"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apiserver"
	"github.com/keygate-dev/keygate/keystore/auth"
	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
	"github.com/keygate-dev/keygate/keystore/auth/session"
	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/keystore/oidc"
	"github.com/keygate-dev/keygate/keystore/registry"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/teams"
	"github.com/keygate-dev/keygate/keystore/users"
)

// EnvPrefix prefixes the environment variable of every flag: KEYSTORE_ADDRESS.
const EnvPrefix = "KEYSTORE"

// DefaultAdminGroup is the group whose members see and manage every key.
const DefaultAdminGroup = "keygate:admins"

// Config is the parsed command line of `keystore serve`.
type Config struct {
	Address, AuthAddress, HTTPAddress string
	CertFile, KeyFile                 string
	ClientCAFile                      string
	AllowedNames                      []string
	AdminGroup                        string
	LoginTTL                          time.Duration
	// BcryptCost is the cost of the hashes the server makes: users' hashes of another cost are
	// rehashed at it when they log in, and the dummy hash that unknown users are compared with
	// has it, so that they take as long as known ones.
	BcryptCost int
	// Quotas bound the keys of each owner and the ttl of non-admins' keys; the login-key bound
	// is also the login endpoint's.
	Quotas registry.Quotas
	// ExternalURL is the edge's public URL: the OIDC issuer is it plus /oidc.
	ExternalURL string
	// OIDCAddress is the HTTPS address of the OIDC provider; empty: no provider.
	OIDCAddress string
	// ConfigFile is the configuration file (OIDC clients, SSO connectors), reloaded on change.
	ConfigFile string
	// EncryptionKeyFile opens and seals what keystore keeps encrypted in Redis (the OIDC
	// signing keys); required with the provider.
	EncryptionKeyFile string
	// SSORefreshPeriod is how often single sign-on identities due for a refresh are refreshed.
	SSORefreshPeriod time.Duration
	// OIDC are the provider's lifetimes.
	OIDC OIDCLifetimes
	// XDS is where clusters and virtualclusterinstances come from.
	XDS XDSCatalog
	// CreateReplicaWait bounds a create's wait for the extauthz replicas that hold a lease
	// (store.Options.ReplicaWait); 0: no wait.
	CreateReplicaWait time.Duration
	redisflags.Config
	ops.LogFlags
}

// ParseFlags reads the command line and the environment.
func ParseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("keystore serve", flag.ContinueOnError)
	fs.StringVar(&c.Address, "address", "127.0.0.1:19443", "HTTPS address of the management API (the edge's management upstream)")
	fs.StringVar(&c.AuthAddress, "auth-address", "127.0.0.1:19444", "HTTPS address of the login endpoints (the edge's auth upstream)")
	fs.StringVar(&c.HTTPAddress, "http-address", "127.0.0.1:19445", "address of /metrics, /healthz and /readyz")
	fs.StringVar(&c.CertFile, "tls-cert-file", "", "serving certificate (PEM) of both HTTPS addresses")
	fs.StringVar(&c.KeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	fs.StringVar(&c.ClientCAFile, "requestheader-client-ca-file", "", "CA (PEM) that signed the edge's client certificate; identity headers are believed from that certificate only")
	names := fs.String("requestheader-allowed-names", "", "comma-separated common names the edge's client certificate may have; empty: any signed by the CA")
	fs.StringVar(&c.AdminGroup, "admin-group", DefaultAdminGroup, "members of this group see and manage every access key")
	fs.DurationVar(&c.LoginTTL, "login-ttl", auth.DefaultLoginTTL, "lifetime of the keys /auth/password/login issues")
	fs.IntVar(&c.BcryptCost, "bcrypt-cost", users.DefaultCost, "bcrypt cost (4 to 31) of password hashes: the one create-user and set-password use; logins rehash other costs to it")
	fs.IntVar(&c.Quotas.MaxKeysPerUser, "max-keys-per-user", 100, "most live access keys of one user or team, login keys not counted; 0: no bound")
	fs.IntVar(&c.Quotas.MaxLoginKeysPerUser, "max-login-keys-per-user", 20, "most live login keys of one user; a login past it deletes the oldest; 0: no bound")
	fs.DurationVar(&c.Quotas.MaxTTLNonAdmin, "max-ttl-non-admin", 0, "longest ttl of the keys non-admins create (then no key of theirs may be without one); 0: no cap")
	fs.DurationVar(&c.CreateReplicaWait, "create-replica-wait", store.DefaultReplicaWait, "longest a key's create (API, login, SSO, OIDC) waits for every extauthz replica holding a lease (extauthz --digest-lease, keep it below this) to apply it, so that the new key works at once everywhere; 0 waits for none")
	c.registerOIDC(fs)
	c.XDS.register(fs)
	c.Register(fs)
	c.RegisterAcks(fs)
	c.AddLogFlags(fs)
	fs.Usage = flagenv.Usage(fs, EnvPrefix, "Usage: keystore serve [flags]\n\nServes the management API (management.loft.sh/v1) and the login endpoints behind the edge.")
	if err := flagenv.Parse(fs, EnvPrefix, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, a := range []struct{ flag, v string }{{"address", c.Address}, {"auth-address", c.AuthAddress}, {"http-address", c.HTTPAddress}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return c, fmt.Errorf("--%s %q: want host:port", a.flag, a.v)
		}
	}
	if err := c.Parse(); err != nil {
		return c, err
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return c, errors.New("--tls-cert-file and --tls-private-key-file are required")
	}
	if c.ClientCAFile == "" {
		return c, errors.New("--requestheader-client-ca-file is required: without it anyone could claim any identity")
	}
	for _, n := range strings.Split(*names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			c.AllowedNames = append(c.AllowedNames, n)
		}
	}
	return c, c.checkValues()
}

// checkValues checks the flags' values that parsing alone does not.
func (c *Config) checkValues() error {
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("--bcrypt-cost %d: want %d to %d", c.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if q := c.Quotas; q.MaxKeysPerUser < 0 || q.MaxLoginKeysPerUser < 0 || q.MaxTTLNonAdmin < 0 {
		return errors.New("--max-keys-per-user, --max-login-keys-per-user and --max-ttl-non-admin must not be negative")
	}
	if c.LoginTTL < time.Second {
		return fmt.Errorf("--login-ttl %s: want at least 1s", c.LoginTTL)
	}
	if c.CreateReplicaWait < 0 || c.CreateReplicaWait > time.Minute {
		return fmt.Errorf("--create-replica-wait %s: want 0 (no wait) to 1m", c.CreateReplicaWait)
	}
	if c.SSORefreshPeriod < time.Second {
		return fmt.Errorf("--sso-refresh-period %s: want at least 1s", c.SSORefreshPeriod)
	}
	if err := checkExternalURL(c.ExternalURL); err != nil {
		return err
	}
	if err := c.XDS.check(); err != nil {
		return err
	}
	return c.checkOIDC()
}

// Main runs `keystore serve` until SIGINT or SIGTERM and returns the exit code.
func Main(args []string) int {
	return ops.Main("keystore serve", args, ParseFlags, Run)
}

// Run serves until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	// k8s.io/apiserver logs through klog; send it to the same structured log.
	klog.SetSlogLogger(log.With("component", "apiserver"))

	rdb, err := newRedis(c)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := ops.NewRegistry()
	keys := store.NewWithOptions(rdb, store.Options{Acks: c.Acks, ReplicaWait: replicaWait(c.CreateReplicaWait),
		ObserveReplicaWait: observeReplicaWait(reg, log)})
	people := newUsers(rdb, c)

	targets, closeTargets, err := c.XDS.source()
	if err != nil {
		return fmt.Errorf("--xds-*: %w", err)
	}
	defer closeTargets()
	gs, err := apiserver.New(apiserver.Config{
		Address: c.Address, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ClientCAFile: c.ClientCAFile, AllowedNames: c.AllowedNames,
		Registry: registry.Options{AdminGroup: c.AdminGroup, Teams: teamsOf(people), OwnerUID: ownerUID(people), Quotas: c.Quotas},
		Keys:     keys, UserInfo: userInfo(people), Users: people, Teams: teams.NewWithAcks(rdb, c.Acks),
		Targets: targets,
	})
	if err != nil {
		return err
	}

	if err := instrument(c, rdb, reg); err != nil {
		return err
	}
	browser, err := newBrowserSide(c, rdb, keys, people, log, reg)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	browser.start(gctx, g, log)
	g.Go(func() error {
		// Fresh memory of the extauthz replicas' leases, so that creates right after Redis lost
		// its data wait for the leases it lost (store.WatchLeases).
		keys.WatchLeases(gctx, leaseWatchInterval)
		return nil
	})
	g.Go(func() error {
		log.Info("serving", "server", "management API", "address", c.Address, "redis", strings.Join(c.RedisAddresses, ","))
		return gs.PrepareRun().RunWithContext(gctx)
	})
	g.Go(func() error {
		return ops.ServeHTTP(gctx, log, "metrics and health", c.HTTPAddress, ops.Handler(reg, redisflags.Ready(rdb)))
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// newRedis is keystore's Redis client, once it can honour --redis-min-replica-acks.
func newRedis(c Config) (redis.UniversalClient, error) {
	opts := c.Options()
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opts.PoolSize = 200 // every watch holds a connection in a blocking read
	rdb := redisflags.NewClient(opts)
	if err := c.Acks.Check(rdb); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("--redis-min-replica-acks: %w", err)
	}
	return rdb, nil
}

// instrument adds the metrics of Redis commands and of the certificates' expiry to reg.
func instrument(c Config, rdb redis.UniversalClient, reg *prometheus.Registry) error {
	if err := redismetrics.Instrument(rdb, reg, "keystore"); err != nil {
		return err
	}
	return ops.CertExpiry(reg, map[string]string{"tls-cert-file": c.CertFile, "redis-client-cert-file": c.ClientCertFile()})
}

// browserSide is what browsers and relying parties reach through /auth/ and /oidc/: the
// configuration watcher, the OIDC provider (nil without --oidc-address), single sign-on (nil
// without connectors) and the login listener.
type browserSide struct {
	watcher  *config.Watcher
	provider *oidc.Provider
	oidcSrv  *http.Server
	single   *loginSSO
	authSrv  *http.Server
}

func newBrowserSide(c Config, rdb redis.UniversalClient, keys *store.Store, people *users.Store, log *slog.Logger, reg *prometheus.Registry) (*browserSide, error) {
	b := &browserSide{}
	var err error
	if b.watcher, err = newWatcher(c, log, reg); err != nil {
		return nil, err
	}
	box, err := loadBox(c)
	if err != nil {
		return nil, err
	}
	if b.provider, b.oidcSrv, err = oidcServer(c, rdb, keys, people, b.watcher, box, log, reg); err != nil {
		return nil, err
	}
	// A nil *oidc.Provider in the interface would not be a nil interface: the login page and
	// SSO tell "no provider" by a nil AuthRequests.
	var requests session.AuthRequests
	if b.provider != nil {
		requests = b.provider
	}
	if b.single, err = newSSO(c, keys, people, rdb, b.watcher, box, requests, log, reg); err != nil {
		return nil, err
	}
	var codes auth.CLICodes
	if b.provider != nil {
		codes = b.provider.CLICodes()
	}
	if b.authSrv, err = loginServer(c, rdb, keys, people, log, reg, b.single, requests, codes); err != nil {
		return nil, err
	}
	return b, nil
}

// start runs every part in g until ctx ends.
func (b *browserSide) start(ctx context.Context, g *errgroup.Group, log *slog.Logger) {
	g.Go(func() error { b.watcher.Run(ctx); return nil })
	if b.provider != nil {
		g.Go(func() error { b.provider.Run(ctx); return nil })
		g.Go(func() error { return serveTLS(ctx, log, "OIDC provider", "--oidc-address", b.oidcSrv) })
	}
	g.Go(func() error { return serveTLS(ctx, log, "login endpoints", "--auth-address", b.authSrv) })
	g.Go(func() error { return b.single.run(ctx) })
}

// loginServer is the HTTPS server of the login endpoints and the login page.
func loginServer(c Config, rdb redis.UniversalClient, keys *store.Store, people *users.Store, log *slog.Logger, reg *prometheus.Registry, single *loginSSO, requests session.AuthRequests, codes auth.CLICodes) (*http.Server, error) {
	api, err := auth.New(auth.Options{Keys: keys, Users: people, LoginTTL: c.LoginTTL, MaxLoginKeys: c.Quotas.MaxLoginKeysPerUser, CLICodes: codes,
		Limits: auth.LimitStore{Redis: rdb}, Log: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	page, err := loginpage.New(loginpage.Options{
		Auth:     api,
		Sessions: &session.Reader{Keys: keys, Users: people},
		// The OIDC provider's pending requests; nil without --oidc-address, when every
		// authRequestID is unknown and the page offers the plain sign-in.
		Requests:   requests,
		Connectors: single.connectors(),
		Log:        log,
	})
	if err != nil {
		return nil, err
	}
	h, err := newEdgeForwarded(loginMux(api, page, single.handler()), c.AllowedNames, reg, log)
	if err != nil {
		return nil, err
	}
	return httpsServer(c, log, "login endpoints", c.AuthAddress, h, c.ClientCAFile)
}

// httpsServer serves h on addr with the serving certificate, read again when its files change
// (internal/tlsfiles: a rotated certificate needs no restart). With clientCAFile, clients are
// asked for a certificate it signed, verified if given and never required (the login
// endpoints: edgeForwarded believes X-Forwarded-For only with the edge's).
func httpsServer(c Config, log *slog.Logger, what, addr string, h http.Handler, clientCAFile string) (*http.Server, error) {
	files := tlsfiles.Files{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: clientCAFile,
		CertFlag: "tls-cert-file", KeyFlag: "tls-private-key-file", ClientCAFlag: "requestheader-client-ca-file"}
	certs, err := tlsfiles.NewServer(files, func(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		if clientCAs != nil {
			cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, clientCAs
		}
		return cfg
	}, tlsfiles.LogReloads(log, what))
	if err != nil {
		return nil, err
	}
	return &http.Server{
		Addr: addr, Handler: h, TLSConfig: certs.Config(),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	}, nil
}

// loginMux routes the auth listener (the edge's /auth/, stripped): the JSON endpoints to api,
// the login page's paths to page, and everything else to sso, the single sign-on connectors'
// handler (keystore/sso: /{connector}/login, /{connector}/callback), or to api's 404 while
// there is none.
//
// SSO is the catch-all "/" rather than "/{connector}/login": ServeMux would refuse that pattern
// beside "/password/login" (neither is more specific), and a fallback never shadows a fixed
// path. Connector IDs password, login, logout and signout are therefore reserved: the
// connectors' validation in keystore/config must refuse them.
func loginMux(api, page, sso http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(auth.LoginPath, api)     // POST /password/login (JSON)
	mux.Handle(auth.LogoutPath, api)    // POST /logout, Authorization: Bearer (JSON)
	mux.Handle(auth.OIDCLoginPath, api) // POST /oidc/login: the CLI's code (JSON)
	mux.Handle(loginpage.LoginPath, page)
	mux.Handle(loginpage.SignoutPath, page) // the page's form; not /logout, which is the JSON API's
	if sso == nil {                         // no connectors: unknown paths get the JSON API's 404
		sso = api
	}
	mux.Handle("/", sso)
	return mux
}

// serveTLS serves srv (what, listening on the address of flag) until ctx ends, then shuts down
// gracefully.
func serveTLS(ctx context.Context, log *slog.Logger, what, flag string, srv *http.Server) error {
	lis, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s %s: %w", flag, srv.Addr, err)
	}
	log.Info("serving", "server", what, "address", lis.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ServeTLS(lis, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newUsers is the user store at --bcrypt-cost: the cost of its rehashes and of the dummy hash
// an unknown user's password is compared with.
func newUsers(rdb redis.UniversalClient, c Config) *users.Store {
	return users.New(rdb, users.Options{Cost: c.BcryptCost, Acks: c.Acks})
}

func teamsOf(people *users.Store) registry.TeamsFunc {
	return func(ctx context.Context, name string) ([]string, error) {
		u, err := people.Get(ctx, name)
		if errors.Is(err, users.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return u.Teams, nil
	}
}

func userInfo(people *users.Store) registry.UserInfoFunc {
	return func(ctx context.Context, name string) (*registry.UserDetails, error) {
		u, err := people.Get(ctx, name)
		if errors.Is(err, users.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		info := &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: u.Name, Username: u.Name, DisplayName: u.DisplayName, Email: u.Email}}
		for _, t := range u.Teams {
			info.Teams = append(info.Teams, &v1.EntityInfo{Name: t})
		}
		return &registry.UserDetails{Info: info, UID: u.UID, Groups: u.Groups, Disabled: u.Disabled}, nil
	}
}

// ownerUID is the UID a new key of user name records: "" for a user the store does not have.
func ownerUID(people *users.Store) registry.OwnerUIDFunc {
	return func(ctx context.Context, name string) (string, error) {
		u, err := people.Get(ctx, name)
		if errors.Is(err, users.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return u.UID, nil
	}
}
