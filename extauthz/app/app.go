// Package app is the extauthz command: flags, wiring, serving and graceful shutdown.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/keygate-dev/keygate/extauthz/activity"
	"github.com/keygate-dev/keygate/extauthz/decide"
	"github.com/keygate-dev/keygate/extauthz/follow"
	"github.com/keygate-dev/keygate/extauthz/identity"
	"github.com/keygate-dev/keygate/extauthz/keycache"
	"github.com/keygate-dev/keygate/extauthz/server"
	"github.com/keygate-dev/keygate/extauthz/userinfo"
	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/ops"
	"github.com/keygate-dev/keygate/internal/redisflags"
	"github.com/keygate-dev/keygate/internal/redismetrics"
	"github.com/keygate-dev/keygate/internal/tlsfiles"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// EnvPrefix prefixes the environment variable of every flag: EXTAUTHZ_REDIS_ADDRESS.
const EnvPrefix = "EXTAUTHZ"

// Config is the parsed command line.
type Config struct {
	GRPCAddress, HTTPAddress string
	// PprofAddress, when set, serves Go's /debug/pprof/ there (loopback only).
	PprofAddress string
	// GRPCTLS is the mutual TLS of the ext_authz port: only the edge's Envoy may ask.
	GRPCTLS grpctls.Config
	redisflags.Config
	GrafanaUserHeader string
	// GrafanaGroupsHeader is empty unless the key's groups go to Grafana.
	GrafanaGroupsHeader string
	// GrafanaAuthProxyHeaders are removed from every client request.
	GrafanaAuthProxyHeaders []string
	MaxTTL                  time.Duration
	ActivityFlushInterval   time.Duration
	KeyCacheSize            int
	KeyCacheTTL             time.Duration
	DigestLease             time.Duration
	// ClockOffset shifts this replica's clock, for tests of clock skew only (e2e/faults).
	ClockOffset time.Duration
	ops.LogFlags
}

// ParseFlags reads the command line and the environment.
func ParseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("extauthz", flag.ContinueOnError)
	fs.StringVar(&c.GRPCAddress, "grpc-address", "127.0.0.1:19000", "address of the ext_authz gRPC service that Envoy calls")
	c.GRPCTLS.Register(fs, "ext_authz")
	fs.StringVar(&c.HTTPAddress, "http-address", "127.0.0.1:19001", "address of /metrics, /healthz and /readyz")
	fs.StringVar(&c.PprofAddress, "pprof-address", "", "loopback address to serve Go's profiles (/debug/pprof/) on, e.g. 127.0.0.1:19002 (a port alone means 127.0.0.1); empty serves none")
	c.Register(fs)
	fs.StringVar(&c.GrafanaUserHeader, "grafana-user-header", identity.DefaultGrafanaUserHeader, "header Grafana's auth proxy reads the user from")
	fs.StringVar(&c.GrafanaGroupsHeader, "grafana-groups-header", "", "header that carries the key's groups to Grafana, as a JSON list (map it with [auth.proxy] headers = Groups:<name>); empty sends none")
	grafanaHeaders := fs.String("grafana-auth-proxy-headers", strings.Join(identity.DefaultGrafanaAuthProxyHeaders, ","),
		"comma-separated headers Grafana's auth proxy may read ([auth.proxy] header_name and headers); clients' are removed from every request")
	fs.DurationVar(&c.MaxTTL, "max-ttl", 0, "operator-wide cap on any key's lifetime, e.g. 720h; 0 means no cap")
	fs.DurationVar(&c.ActivityFlushInterval, "activity-flush-interval", activity.DefaultInterval, "how often keys' last-use times are written to status.lastActivity, in one batch")
	fs.IntVar(&c.KeyCacheSize, "key-cache-size", keycache.DefaultSize, "most access keys (and, apart, most users) kept in memory between checks; changes in Redis drop them at once; 0 turns the caches off")
	fs.DurationVar(&c.KeyCacheTTL, "key-cache-ttl", keycache.DefaultTTL, "longest a cached key or user is used without reading Redis again, a safety net behind the change events")
	fs.DurationVar(&c.DigestLease, "digest-lease", keycache.DefaultLease, "lease this replica holds in Redis so that it refuses unknown keys without reading Redis; keystore's creates wait for the replicas holding one (keep keystore's --create-replica-wait above it); 0 holds none: each batch of unknown keys then reads the store's newest change")
	fs.DurationVar(&c.ClockOffset, "testing-clock-offset", 0, "TESTING ONLY: add this to the clock every decision reads (expiry, last activity), to show what skew between replicas does; never set it in production")
	c.AddLogFlags(fs)
	fs.Usage = flagenv.Usage(fs, EnvPrefix, "Usage: extauthz [flags]\n\nThe edge's Envoy ext_authz service: checks access keys in Redis and sets identity headers.")
	if err := flagenv.Parse(fs, EnvPrefix, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.Parse(); err != nil {
		return c, err
	}
	if err := c.GRPCTLS.Validate(c.GRPCAddress, "grpc-address"); err != nil {
		return c, err
	}
	if c.PprofAddress != "" {
		addr, err := ops.PprofAddress(c.PprofAddress)
		if err != nil {
			return c, err
		}
		c.PprofAddress = addr
	}
	if c.MaxTTL < 0 {
		return c, errors.New("--max-ttl must not be negative")
	}
	if c.ActivityFlushInterval < 100*time.Millisecond {
		return c, fmt.Errorf("--activity-flush-interval %s: want at least 100ms", c.ActivityFlushInterval)
	}
	if c.KeyCacheSize < 0 {
		return c, fmt.Errorf("--key-cache-size %d: want 0 (off) or more", c.KeyCacheSize)
	}
	if c.KeyCacheTTL < time.Second {
		return c, fmt.Errorf("--key-cache-ttl %s: want at least 1s", c.KeyCacheTTL)
	}
	if c.DigestLease != 0 && (c.DigestLease < 100*time.Millisecond || c.DigestLease > store.MaxLease) {
		return c, fmt.Errorf("--digest-lease %s: want 0 (none) or 100ms to %s", c.DigestLease, store.MaxLease)
	}
	return c, c.parseGrafana(*grafanaHeaders)
}

// parseGrafana reads and checks the Grafana header flags: header names the edge writes or
// removes must be HTTP field names, or Envoy would refuse them.
func (c *Config) parseGrafana(list string) error {
	if c.GrafanaUserHeader == "" {
		return errors.New("--grafana-user-header is empty")
	}
	for _, h := range strings.Split(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.GrafanaAuthProxyHeaders = append(c.GrafanaAuthProxyHeaders, h)
		}
	}
	if len(c.GrafanaAuthProxyHeaders) == 0 {
		return errors.New("--grafana-auth-proxy-headers is empty: list at least the headers Grafana's auth proxy reads")
	}
	names := append([]string{c.GrafanaUserHeader}, c.GrafanaAuthProxyHeaders...)
	if c.GrafanaGroupsHeader != "" {
		names = append(names, c.GrafanaGroupsHeader)
	}
	for _, h := range names {
		if !isFieldName(h) {
			return fmt.Errorf("Grafana header %q: not an HTTP header name", h)
		}
	}
	return nil
}

// isFieldName reports whether s is an HTTP field name (RFC 9110's token).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !alnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", r) {
			return false
		}
	}
	return true
}

// Main runs extauthz until SIGINT or SIGTERM and returns the exit code.
func Main(args []string) int {
	return ops.Main("extauthz", args, ParseFlags, Run)
}

// Run serves until ctx ends.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	opts := c.Options()
	// A check must answer well within Envoy's ext_authz timeout.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	rdb := redisflags.NewClient(opts)
	defer rdb.Close()
	reg := ops.NewRegistry()
	if err := redismetrics.Instrument(rdb, reg, "extauthz"); err != nil {
		return err
	}
	if err := ops.CertExpiry(reg, map[string]string{grpctls.FlagCertFile: c.GRPCTLS.CertFile,
		"redis-client-cert-file": c.ClientCertFile()}); err != nil {
		return err
	}
	checks := newChecker(c, rdb, log, reg)

	lis, gs, hs, err := newGRPCServer(c, log, checks.srv)
	if err != nil {
		return err
	}

	// The recorder outlives the gRPC server, so that its final flush comes after the last check.
	recCtx, stopRecorder := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecorder()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return checks.rec.Run(recCtx) })
	// The caches' event streams block in Redis; closing the client after the servers stopped
	// ends them at once, so they run outside the group.
	cacheDone, usersDone := make(chan struct{}), make(chan struct{})
	go func() { _ = checks.cache.Run(gctx); close(cacheDone) }()
	go func() { _ = checks.users.Run(gctx); close(usersDone) }()
	defer func() { rdb.Close(); <-cacheDone; <-usersDone }()
	g.Go(func() error {
		log.Info("serving", "server", "ext_authz gRPC", "address", lis.Addr().String(), "tls", !c.GRPCTLS.InsecureLoopback, "redis", strings.Join(c.RedisAddresses, ","))
		return gs.Serve(lis)
	})
	g.Go(func() error {
		return ops.ServeHTTP(gctx, log, "metrics and health", c.HTTPAddress, ops.Handler(reg, redisflags.Ready(rdb)))
	})
	if c.PprofAddress != "" {
		g.Go(func() error { return ops.ServeHTTP(gctx, log, "pprof", c.PprofAddress, ops.PprofHandler()) })
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		stop(gs, hs)
		stopRecorder()
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, grpc.ErrServerStopped)) {
		return nil
	}
	return err
}

// newGRPCServer reads the gRPC port's certificates (a start-up error if they do not load),
// listens on it, and registers the ext_authz and health services.
func newGRPCServer(c Config, log *slog.Logger, checks authv3.AuthorizationServer) (net.Listener, *grpc.Server, *health.Server, error) {
	creds, err := c.GRPCTLS.ServerCredentials(tlsfiles.LogReloads(log, "ext_authz gRPC"))
	if err != nil {
		return nil, nil, nil, err
	}
	lis, err := net.Listen("tcp", c.GRPCAddress)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen on --grpc-address %s: %w", c.GRPCAddress, err)
	}
	gs := grpc.NewServer(append(server.GRPCServerOptions(), grpc.Creds(creds),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}))...)
	authv3.RegisterAuthorizationServer(gs, checks)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	return lis, gs, hs, nil
}

// checker is the check pipeline: the server, the key and user caches it reads, and the
// recorder of uses.
type checker struct {
	srv   *server.Server
	cache *keycache.Cache
	users *userinfo.Directory
	rec   *activity.Recorder
}

func newChecker(c Config, rdb redis.UniversalClient, log *slog.Logger, reg *prometheus.Registry) checker {
	now := time.Now
	if c.ClockOffset != 0 {
		log.Warn("the clock is shifted for a test (--testing-clock-offset): expiry decisions are off by as much", "offset", c.ClockOffset)
		now = func() time.Time { return time.Now().Add(c.ClockOffset) }
	}
	keys := store.New(rdb)
	rec := activity.New(keys, activity.Options{Interval: c.ActivityFlushInterval}, log, reg)
	size := c.KeyCacheSize
	if size == 0 {
		size = -1 // keycache's "off"
	}
	lag := follow.NewLag(reg)
	cache := keycache.New(keys, keycache.Options{Size: size, TTL: c.KeyCacheTTL, MaxTTL: c.MaxTTL, Now: now, Lease: c.DigestLease,
		Lag: lag.WithLabelValues(follow.StreamAccessKeys)}, log, reg)
	// Users are cached like keys, and dropped on the user store's change events, so that a
	// user's deletion or change reaches every one of their keys as fast as a key's own.
	people := userinfo.New(users.New(rdb, users.Options{}), userinfo.Options{Size: size, TTL: c.KeyCacheTTL, Now: now,
		Lag: lag.WithLabelValues(follow.StreamUsers)}, log)
	srv := server.New(cache, server.Options{
		Now:    now,
		Users:  people,
		Decide: decide.Options{MaxTTL: c.MaxTTL},
		Identity: identity.Options{GrafanaUserHeader: c.GrafanaUserHeader, GrafanaGroupsHeader: c.GrafanaGroupsHeader,
			GrafanaAuthProxyHeaders: c.GrafanaAuthProxyHeaders},
		// The cache also hears of uses, so that a cached key's lastActivity stays current here.
		Activity: activities{rec, cache},
	}, log, reg)
	return checker{srv: srv, cache: cache, users: people, rec: rec}
}

// stop lets in-flight checks finish; Envoy's own timeout bounds how long that takes, and after
// 10 s the rest are cut.
func stop(gs *grpc.Server, hs *health.Server) {
	hs.Shutdown()
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		gs.Stop()
	}
}

// activities tells every recorder of a key's use.
type activities []server.Activity

func (a activities) Record(digest string, t time.Time) {
	for _, r := range a {
		r.Record(digest, t)
	}
}
