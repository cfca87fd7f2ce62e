package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/peer"
)

// stream is what the server remembers of one xDS stream, for logs, the connected gauge and
// the ordering of rotated secrets (see Server.awaitSecrets).
type stream struct {
	ads  bool
	peer string
	// node is the Envoy's node id; Envoy sends its node on the first request only.
	node atomic.Pointer[string]

	mu sync.Mutex
	// secrets are the names of the secrets the Envoy subscribed to on this (delta) stream.
	secrets map[string]bool
	// secretVersion is the snapshot version of the last secret response sent on the stream.
	secretVersion string
}

// awaits reports whether the stream must be sent the secrets of snapshot version before
// anything newer: it has subscribed to one of changed, and has not been sent version yet.
func (st *stream) awaits(version string, changed []string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.secretVersion == version {
		return false
	}
	for _, name := range changed {
		if st.secrets[name] {
			return true
		}
	}
	return false
}

func (st *stream) nodeID() string {
	if n := st.node.Load(); n != nil {
		return *n
	}
	return ""
}

func (s *Server) callbacks() xdsserver.Callbacks {
	return xdsserver.CallbackFuncs{
		StreamOpenFunc:        s.streamOpen,
		StreamClosedFunc:      s.streamClosed,
		DeltaStreamOpenFunc:   s.streamOpen,
		DeltaStreamClosedFunc: s.streamClosed,
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			s.request(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
			if req.GetTypeUrl() == resource.SecretType {
				s.subscribeSecrets(id, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
			}
			return nil
		},
		// Called on the stream's goroutine right before the response is written: whatever the
		// stream sends next goes out after it.
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.metrics.pushes.WithLabelValues(shortType(resp.GetTypeUrl())).Inc()
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.metrics.pushes.WithLabelValues(shortType(resp.GetTypeUrl())).Inc()
			if resp.GetTypeUrl() != resource.SecretType {
				return
			}
			if v, ok := s.streams.Load(id); ok {
				st := v.(*stream)
				st.mu.Lock()
				st.secretVersion = resp.GetSystemVersionInfo()
				st.mu.Unlock()
			}
		},
	}
}

// subscribeSecrets follows which secrets an Envoy subscribed to on a delta stream.
func (s *Server) subscribeSecrets(id int64, subscribe, unsubscribe []string) {
	v, ok := s.streams.Load(id)
	if !ok {
		return
	}
	st := v.(*stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.secrets == nil {
		st.secrets = map[string]bool{}
	}
	for _, name := range subscribe {
		st.secrets[name] = true
	}
	for _, name := range unsubscribe {
		delete(st.secrets, name)
	}
}

func (s *Server) streamOpen(ctx context.Context, id int64, typeURL string) error {
	st := &stream{ads: typeURL == resource.AnyType}
	if p, ok := peer.FromContext(ctx); ok {
		st.peer = p.Addr.String()
	}
	s.streams.Store(id, st)
	if st.ads {
		s.metrics.connected.Inc()
	}
	s.log.Debug("xDS stream opened", "stream", id, "peer", st.peer, "type", typeOrADS(typeURL))
	return nil
}

func (s *Server) streamClosed(id int64, node *corev3.Node) {
	v, ok := s.streams.LoadAndDelete(id)
	if !ok {
		return
	}
	st := v.(*stream)
	if st.ads {
		s.metrics.connected.Dec()
	}
	s.log.Info("Envoy disconnected", "stream", id, "node", firstNonEmpty(node.GetId(), st.nodeID()), "peer", st.peer)
}

// request notes the node of a stream's first request and reports NACKs: Envoy refused a
// configuration, keeps the previous one, and says why in error_detail.
func (s *Server) request(id int64, node *corev3.Node, typeURL, nonce, errMsg string, nack bool) {
	v, ok := s.streams.Load(id)
	if !ok {
		return
	}
	st := v.(*stream)
	if node.GetId() != "" && st.node.Load() == nil {
		nodeID := node.GetId()
		st.node.Store(&nodeID)
		s.log.Info("Envoy connected", "stream", id, "node", nodeID, "cluster", node.GetCluster(), "peer", st.peer)
	}
	if !nack {
		return
	}
	// Log before counting: whoever sees the count can then find the reason in the log.
	s.log.Error("Envoy rejected the configuration (NACK); it keeps its previous one",
		"node", st.nodeID(), "type", shortType(typeURL), "nonce", nonce, "error", errMsg, "version", s.Version())
	s.metrics.nacks.WithLabelValues(shortType(typeURL)).Inc()
}

// shortType names an xDS type for labels and logs: cluster, listener, scoped_route, route,
// secret, or the type URL.
func shortType(typeURL string) string {
	switch typeURL {
	case resource.SecretType:
		return "secret"
	case resource.ClusterType:
		return "cluster"
	case resource.ListenerType:
		return "listener"
	case resource.ScopedRouteType:
		return "scoped_route"
	case resource.RouteType:
		return "route"
	}
	return typeURL
}

func typeOrADS(typeURL string) string {
	if typeURL == resource.AnyType {
		return "ads"
	}
	return shortType(typeURL)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// cacheLogger passes go-control-plane's logs to slog. Its info logs are per response and
// chatty, so they go to debug.
type cacheLogger struct{ log *slog.Logger }

func (l cacheLogger) Debugf(format string, args ...any) { l.log.Debug(msg(format, args)) }
func (l cacheLogger) Infof(format string, args ...any)  { l.log.Debug(msg(format, args)) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.log.Warn(msg(format, args)) }
func (l cacheLogger) Errorf(format string, args ...any) { l.log.Error(msg(format, args)) }

func msg(format string, args []any) string {
	return "go-control-plane: " + strings.TrimSpace(fmt.Sprintf(format, args...))
}
