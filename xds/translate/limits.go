package translate

import (
	"errors"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Limits bound what one client can hold of the edge: time to send its headers, their size, its
// streams and buffers. The defaults follow Envoy's guide for edge proxies ("Configuring Envoy as
// an edge proxy"); envoy/README.md lists them. Long-lived requests are untouched: Kubernetes,
// management and Grafana routes have no idle timeout of their own (routes.go, longLived), so the
// stream idle timeout cuts idle requests of the public routes and unknown paths only.
type Limits struct {
	// RequestHeadersTimeout is how long a client has to send a request's headers (slowloris).
	RequestHeadersTimeout time.Duration
	// StreamIdleTimeout ends a request that sends and receives nothing for that long, unless
	// its route says otherwise.
	StreamIdleTimeout time.Duration
	// ConnectionIdleTimeout closes a connection without requests for that long.
	ConnectionIdleTimeout time.Duration
	// MaxRequestHeadersKB and MaxHeadersCount bound a request's headers; more is answered 431.
	MaxRequestHeadersKB, MaxHeadersCount uint32
	// MaxConcurrentStreams bounds the requests one HTTP/2 connection carries at once.
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize and InitialConnectionWindowSize bound what an HTTP/2 client can
	// make Envoy buffer before flow control stops it.
	InitialStreamWindowSize, InitialConnectionWindowSize uint32
	// PerConnectionBufferLimitBytes bounds the read and write buffers of each client
	// connection (upstream connections have a fixed 32 KiB, upstreamBufferLimit).
	PerConnectionBufferLimitBytes uint32
	// WatchMaxDuration bounds the requests of long-lived targets that are not upgraded (watches,
	// logs -f), SessionMaxDuration the upgraded ones (exec, attach, port-forward, WebSockets);
	// Envoy ends them at that age (route max_stream_duration). Kinds left out keep the default.
	WatchMaxDuration, SessionMaxDuration StreamBounds
}

// DefaultLimits are the limits of an edge that sets none.
var DefaultLimits = Limits{
	RequestHeadersTimeout:         10 * time.Second,
	StreamIdleTimeout:             5 * time.Minute,
	ConnectionIdleTimeout:         time.Hour,
	MaxRequestHeadersKB:           60,
	MaxHeadersCount:               100,
	MaxConcurrentStreams:          100,
	InitialStreamWindowSize:       64 << 10,
	InitialConnectionWindowSize:   1 << 20,
	PerConnectionBufferLimitBytes: 32 << 10,
	WatchMaxDuration:              DefaultWatchMaxDuration,
	SessionMaxDuration:            DefaultSessionMaxDuration,
}

// withDefaults fills every zero field from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	pick32 := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	return Limits{
		RequestHeadersTimeout:         pick(l.RequestHeadersTimeout, d.RequestHeadersTimeout),
		StreamIdleTimeout:             pick(l.StreamIdleTimeout, d.StreamIdleTimeout),
		ConnectionIdleTimeout:         pick(l.ConnectionIdleTimeout, d.ConnectionIdleTimeout),
		MaxRequestHeadersKB:           pick32(l.MaxRequestHeadersKB, d.MaxRequestHeadersKB),
		MaxHeadersCount:               pick32(l.MaxHeadersCount, d.MaxHeadersCount),
		MaxConcurrentStreams:          pick32(l.MaxConcurrentStreams, d.MaxConcurrentStreams),
		InitialStreamWindowSize:       pick32(l.InitialStreamWindowSize, d.InitialStreamWindowSize),
		InitialConnectionWindowSize:   pick32(l.InitialConnectionWindowSize, d.InitialConnectionWindowSize),
		PerConnectionBufferLimitBytes: pick32(l.PerConnectionBufferLimitBytes, d.PerConnectionBufferLimitBytes),
		WatchMaxDuration:              l.WatchMaxDuration.withDefaults(DefaultWatchMaxDuration),
		SessionMaxDuration:            l.SessionMaxDuration.withDefaults(DefaultSessionMaxDuration),
	}
}

// validate refuses what Envoy would refuse, with the field's name.
func (l Limits) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"request headers timeout", l.RequestHeadersTimeout}, {"stream idle timeout", l.StreamIdleTimeout}, {"connection idle timeout", l.ConnectionIdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	if l.MaxRequestHeadersKB > 8192 {
		errs = append(errs, fmt.Errorf("max request headers %d KiB: Envoy accepts at most 8192", l.MaxRequestHeadersKB))
	}
	// HTTP/2's own bounds (RFC 9113): windows from 65535 to 2^31-1.
	if w := l.InitialStreamWindowSize; w != 0 && (w < 65535 || w > 1<<31-1) {
		errs = append(errs, fmt.Errorf("initial stream window %d: want 65535 to 2147483647", w))
	}
	if w := l.InitialConnectionWindowSize; w != 0 && (w < 65535 || w > 1<<31-1) {
		errs = append(errs, fmt.Errorf("initial connection window %d: want 65535 to 2147483647", w))
	}
	return errors.Join(errs...)
}

// applyLimits sets l on the edge's connection manager.
func applyLimits(hcm *hcmv3.HttpConnectionManager, l Limits) {
	hcm.RequestHeadersTimeout = durationpb.New(l.RequestHeadersTimeout)
	hcm.StreamIdleTimeout = durationpb.New(l.StreamIdleTimeout)
	hcm.MaxRequestHeadersKb = wrapperspb.UInt32(l.MaxRequestHeadersKB)
	hcm.CommonHttpProtocolOptions.IdleTimeout = durationpb.New(l.ConnectionIdleTimeout)
	hcm.CommonHttpProtocolOptions.MaxHeadersCount = wrapperspb.UInt32(l.MaxHeadersCount)
	hcm.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        wrapperspb.UInt32(l.MaxConcurrentStreams),
		InitialStreamWindowSize:     wrapperspb.UInt32(l.InitialStreamWindowSize),
		InitialConnectionWindowSize: wrapperspb.UInt32(l.InitialConnectionWindowSize),
	}
}
