// Package server is the xDS control plane's serving side: it turns each new model into a
// snapshot of Envoy resources (through package translate) and serves it to every Envoy over
// ADS (delta or state-of-the-world) with go-control-plane. Every Envoy gets the same
// configuration; an unchanged model pushes nothing.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryservice "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/translate"
)

// nodeGroup is the one key of the snapshot cache: every Envoy, whatever its node id, gets the
// same configuration (the edge's Envoys are interchangeable replicas).
const nodeGroup = "keygate-edge"

type sameForAll struct{}

func (sameForAll) ID(*corev3.Node) string { return nodeGroup }

// Options configure a Server.
type Options struct {
	// Translate are the options of every translation (listener address, TLS, ext_authz).
	Translate translate.Options
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// Registerer receives the server's metrics; nil means a private registry.
	Registerer prometheus.Registerer
}

// Server publishes models to Envoys.
type Server struct {
	opts    translate.Options
	log     *slog.Logger
	metrics *metrics
	cache   cache.SnapshotCache
	xds     xdsserver.Server
	// ctx ends the xDS streams when Serve stops.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // serialises Update
	// version is the version of the published snapshot. It is read without mu (by the
	// callbacks, on Envoy's streams) so that they never wait on a publication in progress.
	version atomic.Pointer[string]

	streams sync.Map // stream id → *stream
}

// New returns a Server that has published nothing yet (not ready).
func New(o Options) (*Server, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("xds server metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:    o.Translate,
		log:     log,
		metrics: m,
		cache:   cache.NewSnapshotCache(true, sameForAll{}, cacheLogger{log}),
		ctx:     ctx,
		cancel:  cancel,
	}
	s.xds = xdsserver.NewServer(ctx, s.cache, s.callbacks())
	return s, nil
}

// Update translates m and publishes it to every Envoy, unless it equals what is published. An
// error (the model cannot be translated into a valid configuration) changes nothing.
func (s *Server) Update(ctx context.Context, m model.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := translate.Translate(m, s.opts)
	if err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return err
	}
	byType := res.ByType()
	version, err := contentVersion(byType)
	if err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return err
	}
	if version == s.Version() {
		s.metrics.reloads.WithLabelValues(ResultUnchanged).Inc()
		s.metrics.lastSuccess.SetToCurrentTime()
		s.log.Debug("targets unchanged; nothing to push", "version", version)
		return nil
	}
	snap, err := cache.NewSnapshot(version, byType)
	if err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return fmt.Errorf("snapshot is not consistent: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, nodeGroup, snap); err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return fmt.Errorf("publish snapshot: %w", err)
	}
	s.version.Store(&version)
	s.metrics.reloads.WithLabelValues(ResultApplied).Inc()
	s.metrics.lastSuccess.SetToCurrentTime()
	counts := m.Counts()
	attrs := []any{"version", version}
	for _, k := range model.Kinds {
		s.metrics.targets.WithLabelValues(string(k)).Set(float64(counts[k]))
		attrs = append(attrs, string(k), counts[k])
	}
	s.log.Info("configuration published", attrs...)
	return nil
}

// SourceError records that the source of targets could not be read (the caller logs why); the
// published configuration stays in force.
func (s *Server) SourceError(error) {
	s.metrics.reloads.WithLabelValues(ResultInvalid).Inc()
}

// Version is the version of the published configuration, "" before the first.
func (s *Server) Version() string {
	if v := s.version.Load(); v != nil {
		return *v
	}
	return ""
}

// Ready reports nil once a configuration has been published: an Envoy connecting before that
// would wait for one.
func (s *Server) Ready(context.Context) error {
	if s.version.Load() == nil {
		return errors.New("no configuration published yet")
	}
	return nil
}

// contentVersion is a hash of the resources' content: equal configurations get equal versions.
func contentVersion(byType map[resource.Type][]types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, typ := range []resource.Type{resource.ListenerType, resource.RouteType, resource.ClusterType} {
		for _, r := range byType[typ] {
			b, err := opts.Marshal(r)
			if err != nil {
				return "", fmt.Errorf("hash %s: %w", typ, err)
			}
			// Length-prefix each resource so that different splits of the same bytes differ.
			fmt.Fprintf(h, "%s %d\n", typ, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Keepalive settings of the gRPC server. Envoy pings every 30s (envoy/bootstrap.yaml); the
// enforcement must allow that, or gRPC would close Envoy's connection with "too many pings".
var (
	keepaliveParams = keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}
	keepalivePolicy = keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
)

// Register adds the ADS service, and CDS, LDS and RDS for Envoys configured without ADS, to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryservice.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
}

// Serve serves xDS over gRPC on l until ctx ends, then ends the streams and stops.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer(
		grpc.KeepaliveParams(keepaliveParams),
		grpc.KeepaliveEnforcementPolicy(keepalivePolicy),
		// Every Envoy holds one long-lived stream; the default limit of 100 per connection
		// would not matter for ADS, but would for Envoys using one stream per type.
		grpc.MaxConcurrentStreams(1_000_000),
	)
	s.Register(g)
	s.log.Info("serving", "server", "xds gRPC", "address", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	select {
	case err := <-errc:
		s.cancel()
		return fmt.Errorf("xds gRPC: %w", err)
	case <-ctx.Done():
	}
	// xDS streams never end by themselves: end them, then let in-flight responses finish.
	s.cancel()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	return nil
}
