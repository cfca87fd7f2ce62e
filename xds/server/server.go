// Package server is the xDS control plane's serving side: it turns each new model into a
// snapshot of Envoy resources (through package translate) and serves it to every Envoy over
// ADS (delta or state-of-the-world) with go-control-plane. Every Envoy gets the same
// configuration; an unchanged model pushes nothing.
//
// # Secrets and ordering
//
// Upstream credentials and the serving certificate are SDS secrets in the same snapshot as the
// clusters and the listener that name them, served on the same ADS stream. That is safe without
// any sequencing here, because of how Envoy and go-control-plane behave:
//
//   - Envoy asks for a secret only once it has a cluster or listener that names it (delta ADS
//     subscriptions are Envoy's), so the cluster always arrives first. A new cluster (or
//     listener) stays warming, unused, until each of its secrets has arrived; the old version
//     of an updated one keeps serving meanwhile. The routes meanwhile point at a cluster Envoy
//     does not use yet, so a request meets 503, never a cluster without its credential.
//   - The cache answers Envoy's subscription from the snapshot that defined the cluster or a
//     later one, and every snapshot holds every secret its clusters name
//     (translate checks it; Snapshot.Consistent does not look at secrets), so the
//     subscription is answered at once.
//   - In ADS mode the cache answers open watches in a fixed type order (clusters, listeners,
//     route configurations, scopes, then secrets) through one stream, so a snapshot that
//     changes both a cluster and its secret sends the cluster first; and a new target's routes
//     come after its cluster (Envoy subscribes to them once it has their scope).
//   - Secret names are stable per cluster: a rotation changes a secret's content, not its name,
//     so nothing has to warm again. A new token needs only its secret (it is added to each
//     request). A new CA or client certificate also changes the cluster (its credentials
//     digest) so that Envoy drains the connections made with the old certificate, which it
//     would otherwise keep using; Update publishes such secrets one snapshot ahead of their
//     clusters (secretsFirst), so that the replaced cluster never starts with the old content.
//   - Envoy ignores the removal of a secret that a cluster still uses, and drops the secret
//     itself with its last cluster.
//
// If a secret ever failed to arrive, Envoy would stop waiting after the SDS initial fetch
// timeout (15s) and activate the cluster without it: its connections then fail (no TLS
// context, or 401 without the token), they never go out without the credential.
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
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/keygate-dev/keygate/internal/catalog"
	"github.com/keygate-dev/keygate/internal/edgepath"
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
	opts       translate.Options
	translator *translate.Translator // guarded by mu
	log        *slog.Logger
	metrics    *metrics
	cache      cache.SnapshotCache
	xds        xdsserver.Server
	// ctx ends the xDS streams when Serve stops.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // serialises Update
	// published are the resources of the published snapshot (guarded by mu).
	published map[resource.Type][]types.Resource
	// hashes are the versions of the published resources, by message (guarded by mu): the
	// translator returns the same message for a target that did not change, so only new
	// messages are encoded and hashed.
	hashes map[types.Resource]string
	// version is the version of the published snapshot. It is read without mu (by the
	// callbacks, on Envoy's streams) so that they never wait on a publication in progress.
	version atomic.Pointer[string]

	streams sync.Map // stream id → *stream

	// targets are the published targets' identities, for the catalog (internal/catalog).
	targets atomic.Pointer[[]edgepath.Ref]
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
	tr, err := translate.NewTranslator(o.Translate)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:       o.Translate,
		translator: tr,
		log:        log,
		metrics:    m,
		cache:      cache.NewSnapshotCache(true, sameForAll{}, cacheLogger{log}),
		ctx:        ctx,
		cancel:     cancel,
	}
	s.xds = xdsserver.NewServer(ctx, s.cache, s.callbacks())
	return s, nil
}

// Update translates m and publishes it to every Envoy, unless it equals what is published. An
// error (the model cannot be translated into a valid configuration) changes nothing.
func (s *Server) Update(ctx context.Context, m model.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.translator.Translate(m)
	if err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return err
	}
	byType := res.ByType()
	version, versions, hashes, err := contentVersion(byType, s.hashes)
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
	if step, changed := secretsFirst(s.published, byType); len(changed) > 0 {
		stepVersion, stepVersions, _, err := contentVersion(step, s.hashes)
		if err == nil && stepVersion != version {
			if err = s.publish(ctx, stepVersion, step, stepVersions); err == nil {
				s.awaitSecrets(ctx, stepVersion, changed)
			}
		}
		if err != nil {
			s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
			return fmt.Errorf("rotated secrets: %w", err)
		}
	}
	if err := s.publish(ctx, version, byType, versions); err != nil {
		s.metrics.reloads.WithLabelValues(ResultRejected).Inc()
		return err
	}
	s.published, s.hashes = byType, hashes
	s.version.Store(&version)
	s.storeTargets(m)
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

// publish checks the resources as a snapshot and hands them to the cache, which answers every
// Envoy's open watches with what changed. versions are the resources' versions from
// contentVersion: given them, the cache does not encode and hash every resource again to find
// out what changed (at 10,000 targets that was 40% of an update's time).
func (s *Server) publish(ctx context.Context, version string, byType map[resource.Type][]types.Resource, versions map[string]map[string]string) error {
	snap, err := cache.NewSnapshot(version, byType)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	snap.VersionMap = versions
	if err := snap.Consistent(); err != nil {
		return fmt.Errorf("snapshot is not consistent: %w", err)
	}
	if err := s.cache.SetSnapshot(ctx, nodeGroup, snap); err != nil {
		return fmt.Errorf("publish snapshot: %w", err)
	}
	return nil
}

// secretsFirst returns the configuration to publish before next when next gives secrets that
// prev already has a new content: prev, with only those secrets' content replaced, and the names
// of those secrets (none: nothing to publish first). A rotated CA or client certificate changes
// both the secret and its cluster (translate's credentials digest), and the cache would send the
// cluster first (it answers in the order clusters, listeners, routes, scopes, secrets). Envoy would then
// replace the cluster while the secret, shared by the old and the new cluster, still had the
// old content, and a connection opened in that moment could keep the old credential for as long
// as it stays open. Published first, the secrets reach Envoy first (the old cluster uses them
// for its new connections); then the replaced cluster drains the old connections. New and
// removed secrets wait for next, with their clusters: prev's clusters name exactly prev's
// secrets, so the step is as consistent as prev.
func secretsFirst(prev, next map[resource.Type][]types.Resource) (map[resource.Type][]types.Resource, []string) {
	if prev == nil {
		return nil, nil
	}
	nextSecrets := map[string]types.Resource{}
	for _, r := range next[resource.SecretType] {
		nextSecrets[cache.GetResourceName(r)] = r
	}
	step := map[resource.Type][]types.Resource{}
	for typ, rs := range prev {
		if typ != resource.SecretType {
			step[typ] = rs
		}
	}
	var changed []string
	step[resource.SecretType] = []types.Resource{}
	for _, r := range prev[resource.SecretType] {
		name := cache.GetResourceName(r)
		if n, ok := nextSecrets[name]; ok && !proto.Equal(n, r) {
			r = n
			changed = append(changed, name)
		}
		step[resource.SecretType] = append(step[resource.SecretType], r)
	}
	return step, changed
}

// secretsWait bounds how long Update waits for rotated secrets to be sent before their clusters.
// An Envoy that has not acknowledged its previous secrets yet gets the new ones on its
// acknowledgement, within a round trip; one that takes longer is stuck or gone, and must not
// hold up the others' configuration.
const secretsWait = 5 * time.Second

// awaitSecrets waits until every delta stream subscribed to one of the changed secrets has been
// sent the secrets of snapshot version, so that the clusters published next go out after them.
// A stream whose last secret response is still unacknowledged gets them only on its
// acknowledgement: publishing the clusters right away would let them overtake the secrets.
func (s *Server) awaitSecrets(ctx context.Context, version string, changed []string) {
	deadline := time.Now().Add(secretsWait)
	for {
		var waiting []string
		s.streams.Range(func(_, v any) bool {
			if st := v.(*stream); st.awaits(version, changed) {
				waiting = append(waiting, firstNonEmpty(st.nodeID(), st.peer))
			}
			return true
		})
		if len(waiting) == 0 {
			s.log.Debug("rotated secrets sent ahead of their clusters", "version", version, "secrets", changed)
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.log.Warn("rotated secrets not sent to every Envoy in time; publishing their clusters anyway",
				"version", version, "waited", secretsWait, "envoys", waiting)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
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

// contentTypes are the types of a snapshot, in the order contentVersion hashes them.
var contentTypes = []resource.Type{resource.ListenerType, resource.ScopedRouteType, resource.RouteType, resource.ClusterType, resource.SecretType}

// contentVersion returns the snapshot's version, a hash of all its resources' versions (equal
// configurations get equal versions), each resource's version by type and name, and by
// message. A resource's version is the SHA-256 of its deterministic encoding, which is how
// go-control-plane versions resources for delta xDS (cache.Snapshot.ConstructVersionMap), so
// that publish can hand them over; it is taken from known, by message, if there.
// Secrets count: a rotated credential changes only a secret, and must still be published.
func contentVersion(byType map[resource.Type][]types.Resource, known map[types.Resource]string) (string, map[string]map[string]string, map[types.Resource]string, error) {
	h := sha256.New()
	versions := make(map[string]map[string]string, len(contentTypes))
	hashes := make(map[types.Resource]string, len(known))
	for _, typ := range contentTypes {
		versions[typ] = make(map[string]string, len(byType[typ]))
		for _, r := range byType[typ] {
			v, ok := known[r]
			if !ok {
				b, err := cache.MarshalResource(r)
				if err != nil {
					return "", nil, nil, fmt.Errorf("hash %s: %w", typ, err)
				}
				v = cache.HashResource(b)
			}
			name := cache.GetResourceName(r)
			versions[typ][name], hashes[r] = v, v
			fmt.Fprintf(h, "%s %s %s\n", typ, name, v)
		}
	}
	for typ := range byType {
		if _, ok := versions[typ]; !ok {
			return "", nil, nil, fmt.Errorf("hash: resources of type %s are not versioned", typ)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], versions, hashes, nil
}

// Keepalive settings of the gRPC server. Envoy pings every 30s (envoy/bootstrap.yaml); the
// enforcement must allow that, or gRPC would close Envoy's connection with "too many pings".
//
// The server's own ping (after 30 s without a frame from Envoy) gets a long Timeout: Envoy
// reads its xDS connection on its main thread, which applies the updates, and loading a large
// configuration keeps it busy for long (more than 40 s for 10,000 targets on a loaded 2-core
// machine: bench/README.md). A 10 s timeout could close the stream of a busy, healthy Envoy,
// which would reconnect and load everything again. A dead Envoy costs only its stream until the
// timeout (or until TCP notices); a stalled one receives nothing meanwhile either way. (Envoy's
// own keepalive, envoy/bootstrap.yaml, has the same trade-off on its side.)
var (
	keepaliveParams = keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 3 * time.Minute}
	keepalivePolicy = keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
)

// Register adds the ADS service, and CDS, LDS, SRDS, RDS and SDS for Envoys configured without ADS, to
// g. (The resources refer to their routes and secrets over ADS: such an Envoy needs its own
// bootstrap for that.)
func (s *Server) Register(g *grpc.Server) {
	catalog.Register(g, s.Targets)
	discoveryservice.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterScopedRoutesDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
}

// Serve serves xDS over gRPC on l with creds until ctx ends, then ends the streams and stops.
// creds are required: the streams carry every secret of the edge, so the caller must choose
// (mutual TLS, see internal/grpctls; plaintext only on loopback).
func (s *Server) Serve(ctx context.Context, l net.Listener, creds credentials.TransportCredentials) error {
	if creds == nil {
		return errors.New("xds gRPC: no transport credentials")
	}
	g := grpc.NewServer(
		grpc.Creds(creds),
		grpc.KeepaliveParams(keepaliveParams),
		grpc.KeepaliveEnforcementPolicy(keepalivePolicy),
		// Every Envoy holds one long-lived stream; the default limit of 100 per connection
		// would not matter for ADS, but would for Envoys using one stream per type.
		grpc.MaxConcurrentStreams(1_000_000),
	)
	s.Register(g)
	s.log.Info("serving", "server", "xds gRPC", "address", l.Addr().String(), "security", creds.Info().SecurityProtocol)
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

// storeTargets keeps the identities of m's targets for the catalog.
func (s *Server) storeTargets(m model.Model) {
	refs := make([]edgepath.Ref, 0, len(m.Targets))
	for _, t := range m.Targets {
		refs = append(refs, t.Ref)
	}
	s.targets.Store(&refs)
}

// Targets are the published targets (internal/catalog): what Envoy routes, never a target
// that was refused. ok is false until the first publication.
func (s *Server) Targets() ([]edgepath.Ref, bool) {
	refs := s.targets.Load()
	if refs == nil {
		return nil, false
	}
	return *refs, true
}
