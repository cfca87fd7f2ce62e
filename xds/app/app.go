// Package app is the xds command: flags, start-up checks, and the wiring of the sources of
// targets (the targets file, Kubernetes), the translator and the xDS server, with /metrics,
// /healthz and /readyz beside them.
// xds/cmd/xds/main.go only calls Main.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/keygate-dev/keygate/internal/flagenv"
	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/ops"
	"github.com/keygate-dev/keygate/internal/tlsfiles"
	"github.com/keygate-dev/keygate/xds/server"
	"github.com/keygate-dev/keygate/xds/source/kube"
	"github.com/keygate-dev/keygate/xds/translate"
)

// EnvPrefix is the prefix of the environment variables that stand for flags: XDS_TARGETS_FILE
// for --targets-file.
const EnvPrefix = "XDS"

const summary = `xds: the keygate control plane. It reads the targets file (and, with --source=kubernetes,
Cluster objects), translates the targets into Envoy's listener, routes and clusters, and serves
them to every Envoy over delta ADS (gRPC). Changes apply without restarting anything; a bad
edit is refused and logged.

Usage: xds --targets-file targets.yaml --tls-cert-file edge.crt --tls-key-file edge.key \
           --grpc-tls-cert-file xds.crt --grpc-tls-key-file xds.key --grpc-client-ca-file control-plane-ca.crt [flags]
       xds --source kubernetes [--targets-file static.yaml] --tls-cert-file edge.crt --tls-key-file edge.key \
           --grpc-tls-cert-file xds.crt --grpc-tls-key-file xds.key --grpc-client-ca-file control-plane-ca.crt [flags]`

// Config is the parsed command line.
type Config struct {
	Source              string
	TargetsFile         string
	Kubeconfig          string
	KubeSecretNamespace string
	// DiscoveryPollInterval is how often connected clusters without virtual clusters are
	// polled for vcluster Services.
	DiscoveryPollInterval time.Duration
	GRPCAddress           string
	// GRPCTLS is the mutual TLS of the gRPC port: it serves every secret of the edge.
	GRPCTLS         grpctls.Config
	HTTPAddress     string
	PprofAddress    string // net/http/pprof; empty is off
	ListenAddress   string
	TLSCertFile     string
	TLSKeyFile      string
	ExtAuthzCluster string
	ExtAuthzTimeout time.Duration
	Limits          translate.Limits
	LogLevel        string
	LogFormat       string
}

// UsageError is a bad command line; the command exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ParseFlags parses args (and XDS_* environment variables) into a Config. Usage goes to out.
func ParseFlags(args []string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("xds", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Source, "source", SourceFile, "where the clusters come from: file (--targets-file) or kubernetes (Cluster objects, plus --targets-file if set)")
	fs.StringVar(&c.TargetsFile, "targets-file", "", "the YAML file of targets (schema: xds/README.md); required with --source=file")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "with --source=kubernetes: kubeconfig of the cluster holding the Cluster objects; empty means in-cluster")
	fs.StringVar(&c.KubeSecretNamespace, "kube-secret-namespace", "", "with --source=kubernetes: the only namespace whose Secrets are watched; empty means all")
	fs.DurationVar(&c.DiscoveryPollInterval, "discovery-poll-interval", kube.DefaultPollInterval, "with --source=kubernetes: how often a connected cluster without virtual clusters is listed for vcluster Services; its first virtual cluster is served up to that long after it appears (a cluster with some is watched)")
	fs.StringVar(&c.GRPCAddress, "grpc-address", "127.0.0.1:18000", "host:port of the xDS gRPC server that Envoy connects to")
	c.GRPCTLS.Register(fs, "xDS")
	fs.StringVar(&c.HTTPAddress, "http-address", "127.0.0.1:18001", "host:port of /metrics, /healthz and /readyz")
	fs.StringVar(&c.PprofAddress, "pprof-address", "", "loopback host:port of Go's profiles (net/http/pprof, under /debug/pprof/); empty means off; a port alone (:6060) listens on 127.0.0.1")
	fs.StringVar(&c.ListenAddress, "listen-address", "0.0.0.0:8443", "host:port of Envoy's HTTPS listener (the edge)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate (chain) the edge serves; required")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file; required")
	fs.StringVar(&c.ExtAuthzCluster, "extauthz-cluster", translate.DefaultExtAuthzCluster, "Envoy cluster of the ext_authz gRPC service (defined in Envoy's bootstrap)")
	fs.DurationVar(&c.ExtAuthzTimeout, "extauthz-timeout", translate.DefaultExtAuthzTimeout, "how long Envoy waits for an access-key check before it answers 503")
	fs.DurationVar(&c.Limits.RequestHeadersTimeout, "request-headers-timeout", translate.DefaultLimits.RequestHeadersTimeout, "how long a client has to send a request's headers before Envoy closes the connection")
	fs.DurationVar(&c.Limits.StreamIdleTimeout, "stream-idle-timeout", translate.DefaultLimits.StreamIdleTimeout, "how long a request may send and receive nothing; Kubernetes, management and Grafana routes (watches, exec, port-forward, live dashboards) have no idle timeout")
	c.Limits.WatchMaxDuration, c.Limits.SessionMaxDuration = maps.Clone(translate.DefaultWatchMaxDuration), maps.Clone(translate.DefaultSessionMaxDuration)
	fs.Var(c.Limits.WatchMaxDuration, "max-watch-duration", "longest a watch or logs -f lasts before Envoy ends it and the client resumes, judged again (a revoked key's bound): a duration for every kind, or KIND=DURATION,... (cluster, virtualcluster, management, grafana); 0 means none")
	fs.Var(c.Limits.SessionMaxDuration, "max-session-duration", "longest an exec, attach, port-forward or WebSocket session lasts before Envoy ends it (a revoked key's bound): a duration for every kind, or KIND=DURATION,...; 0 means none")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	fs.Usage = flagenv.Usage(fs, EnvPrefix, summary)
	if err := flagenv.Parse(fs, EnvPrefix, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, &UsageError{err}
	}
	if fs.NArg() > 0 {
		return Config{}, &UsageError{fmt.Errorf("unexpected arguments %q: xds takes flags only", fs.Args())}
	}
	if err := c.validate(); err != nil {
		return Config{}, &UsageError{err}
	}
	if c.PprofAddress != "" {
		c.PprofAddress, _ = ops.PprofAddress(c.PprofAddress) // validated: a port alone becomes 127.0.0.1's
	}
	return c, nil
}

func (c Config) validate() error {
	var errs []error
	required := func(name, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s (or %s) is required", name, flagenv.EnvName(EnvPrefix, name)))
		}
	}
	switch c.Source {
	case SourceFile:
		required("targets-file", c.TargetsFile)
		for _, f := range []struct{ name, v string }{{"kubeconfig", c.Kubeconfig}, {"kube-secret-namespace", c.KubeSecretNamespace}} {
			if f.v != "" {
				errs = append(errs, fmt.Errorf("--%s is set but --source is %s: add --source=%s or remove it", f.name, SourceFile, SourceKubernetes))
			}
		}
	case SourceKubernetes:
	default:
		errs = append(errs, fmt.Errorf("--source %q: want %s or %s", c.Source, SourceFile, SourceKubernetes))
	}
	required("tls-cert-file", c.TLSCertFile)
	required("tls-key-file", c.TLSKeyFile)
	for _, a := range []struct{ name, v string }{{"grpc-address", c.GRPCAddress}, {"http-address", c.HTTPAddress}, {"listen-address", c.ListenAddress}} {
		if _, _, err := splitAddress(a.v); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", a.name, err))
		}
	}
	if c.PprofAddress != "" {
		if _, err := ops.PprofAddress(c.PprofAddress); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.GRPCTLS.Validate(c.GRPCAddress, "grpc-address"); err != nil {
		errs = append(errs, err)
	}
	if host, _, err := splitAddress(c.ListenAddress); err == nil && net.ParseIP(host) == nil {
		errs = append(errs, fmt.Errorf("--listen-address: %q: Envoy listens on an IP address, e.g. 0.0.0.0:8443", c.ListenAddress))
	}
	if c.ExtAuthzCluster == "" {
		errs = append(errs, errors.New("--extauthz-cluster must not be empty"))
	}
	if c.DiscoveryPollInterval <= 0 {
		errs = append(errs, fmt.Errorf("--discovery-poll-interval %s must be positive", c.DiscoveryPollInterval))
	}
	if c.ExtAuthzTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--extauthz-timeout %s must be positive", c.ExtAuthzTimeout))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"request-headers-timeout", c.Limits.RequestHeadersTimeout}, {"stream-idle-timeout", c.Limits.StreamIdleTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s %s must be positive", d.name, d.v))
		}
	}
	if _, err := ops.NewLogger(io.Discard, c.LogLevel, c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// splitAddress parses host:port with a numeric port from 1 to 65535 (the host may be empty).
func splitAddress(addr string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, p)
	}
	return host, uint32(port), nil
}

// Main runs the command with args until SIGINT or SIGTERM and returns its exit status: 0, 1 for
// a failure, 2 for a bad command line.
func Main(args []string) int {
	ctx, stop := ops.SignalContext()
	defer stop()
	err := Run(ctx, args, os.Stderr)
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "xds: %v\nRun xds --help for the flags.\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "xds: %v\n", err)
		return 1
	}
}

// Run runs the command with args until ctx ends, logging to logOut. It returns a *UsageError
// for a bad command line, and an error if start-up fails (e.g. a bad targets file) or a server
// stops.
func Run(ctx context.Context, args []string, logOut io.Writer) error {
	cfg, err := ParseFlags(args, logOut)
	if err != nil {
		return err
	}
	log, err := ops.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return &UsageError{err}
	}
	if cfg.PprofAddress != "" {
		stop, err := startPprof(log, cfg.PprofAddress)
		if err != nil {
			return err
		}
		defer stop()
	}
	topts, err := translateOptions(cfg)
	if err != nil {
		return err
	}
	reg := ops.NewRegistry()
	if err := ops.CertExpiry(reg, map[string]string{"tls-cert-file": cfg.TLSCertFile, grpctls.FlagCertFile: cfg.GRPCTLS.CertFile}); err != nil {
		return err
	}
	srv, err := server.New(server.Options{Translate: topts, Log: log, Registerer: reg})
	if err != nil {
		return err
	}
	srcs, err := startSources(ctx, cfg, log, reg, srv)
	if err != nil {
		return err
	}
	grpcListener, creds, err := listenGRPC(cfg, log)
	if err != nil {
		srcs.close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := append([]func() error{
		func() error { return srv.Serve(ctx, grpcListener, creds) },
		func() error { return ops.ServeHTTP(ctx, log, "xds http", cfg.HTTPAddress, ops.Handler(reg, srv.Ready)) },
	}, srcs.run(ctx)...)
	errc := make(chan error, len(tasks))
	for _, task := range tasks {
		go func() { errc <- task() }()
	}
	log.Info("xds started", "source", cfg.Source, "targets_file", cfg.TargetsFile, "grpc_address", cfg.GRPCAddress,
		"http_address", cfg.HTTPAddress, "listen_address", cfg.ListenAddress, "version", srv.Version())
	if err := firstError(errc, len(tasks), cancel); err != nil {
		return err
	}
	log.Info("xds stopped")
	return nil
}

// firstError waits for n tasks' results on errc: the first task to end (with ctx: all of them)
// ends the others (cancel); the first error is the answer.
func firstError(errc <-chan error, n int, cancel context.CancelFunc) error {
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
		cancel()
	}
	return first
}

// listenGRPC reads the gRPC port's certificates (a start-up error if they do not load) and
// listens on it.
func listenGRPC(cfg Config, log *slog.Logger) (net.Listener, credentials.TransportCredentials, error) {
	creds, err := cfg.GRPCTLS.ServerCredentials(tlsfiles.LogReloads(log, "xds gRPC"))
	if err != nil {
		return nil, nil, fmt.Errorf("xds gRPC: %w", err)
	}
	l, err := net.Listen("tcp", cfg.GRPCAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("xds gRPC: listen on %s: %w", cfg.GRPCAddress, err)
	}
	return l, creds, nil
}

// translateOptions reads the serving certificate and builds the translator's options.
func translateOptions(cfg Config) (translate.Options, error) {
	cert, err := os.ReadFile(cfg.TLSCertFile)
	if err != nil {
		return translate.Options{}, fmt.Errorf("--tls-cert-file: %w", err)
	}
	key, err := os.ReadFile(cfg.TLSKeyFile)
	if err != nil {
		return translate.Options{}, fmt.Errorf("--tls-key-file: %w", err)
	}
	// Envoy would refuse the listener: catch it here, with a clearer message.
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return translate.Options{}, fmt.Errorf("--tls-cert-file %s and --tls-key-file %s: not a matching PEM certificate and key: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	host, port, err := splitAddress(cfg.ListenAddress)
	if err != nil {
		return translate.Options{}, fmt.Errorf("--listen-address: %w", err)
	}
	return translate.Options{
		ListenAddress:   host,
		ListenPort:      port,
		ServingCert:     cert,
		ServingKey:      key,
		ExtAuthzCluster: cfg.ExtAuthzCluster,
		ExtAuthzTimeout: cfg.ExtAuthzTimeout,
		Limits:          cfg.Limits,
	}, nil
}
