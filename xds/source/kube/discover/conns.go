package discover

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// A watching cluster's informers share one HTTP client whose transport is the discoverer's own,
// so that stopWatching can close its connections for certain. client-go's shared transport
// cache would keep them: closing idle connections once the informers have stopped races with
// their streams' ends (a stream's connection turns idle asynchronously, after the watch
// returned), and a connection that missed it stays open until the transport's idle timeout, a
// cluster back to polling still holding its watch connection.

// connSet is the open connections of one transport.
type connSet struct {
	mu sync.Mutex
	m  map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.m, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}

// dial dials with d and tracks the connection until it is closed.
func (s *connSet) dial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &trackedConn{Conn: conn, set: s}
		s.mu.Lock()
		if s.m == nil {
			s.m = map[*trackedConn]struct{}{}
		}
		s.m[c] = struct{}{}
		s.mu.Unlock()
		return c, nil
	}
}

// closeAll closes every connection still open.
func (s *connSet) closeAll() {
	s.mu.Lock()
	open := make([]*trackedConn, 0, len(s.m))
	for c := range s.m {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

// watchConfig reaches a connected cluster as restConfig does, over a transport of its own whose
// connections conns tracks: client-go's defaults otherwise (HTTP/2, its health pings, timeouts).
func watchConfig(cfg *rest.Config, conns *connSet) (*rest.Config, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport = utilnet.SetTransportDefaults(&http.Transport{
		DialContext:     conns.dial(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}),
		TLSClientConfig: tlsConfig,
	})
	return cfg, nil
}
