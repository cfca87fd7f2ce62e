package faultload

import (
	"io"
	"net"
	"sync"
)

// Relay forwards TCP connections from its own loopback address to an upstream, and can go down
// (the address refuses connections, open ones are cut) and up again on the same address: a
// cluster behind a lost network path or a restarted load balancer, in milliseconds and without
// restarting its API server. TestUpstreamDown and the soak's upstream-down fault put one in
// front of a connected cluster (RelayedCluster).
type Relay struct {
	// Addr is where the relay listens, host:port.
	Addr     string
	upstream string
	mu       sync.Mutex
	lis      net.Listener
	conns    map[net.Conn]bool
}

// NewRelay listens on a free loopback port and forwards to upstream (host:port).
func NewRelay(upstream string) (*Relay, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{Addr: lis.Addr().String(), upstream: upstream, conns: map[net.Conn]bool{}}
	r.serve(lis)
	return r, nil
}

func (r *Relay) serve(lis net.Listener) {
	r.mu.Lock()
	r.lis = lis
	r.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go r.forward(c)
		}
	}()
}

func (r *Relay) forward(c net.Conn) {
	u, err := net.Dial("tcp", r.upstream)
	if err != nil {
		c.Close()
		return
	}
	if !r.track(c, u) {
		return
	}
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
	r.untrack(c, u)
}

// track notes an open pair, or closes it if the relay went down meanwhile.
func (r *Relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lis == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = true
	}
	return true
}

// untrack forgets a closed pair, so that a relay that runs for long (the soak) does not keep
// every connection it ever forwarded.
func (r *Relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

// Down stops listening and cuts every open connection.
func (r *Relay) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lis != nil {
		r.lis.Close()
		r.lis = nil
	}
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// Up listens on the same address again.
func (r *Relay) Up() error {
	lis, err := net.Listen("tcp", r.Addr)
	if err != nil {
		return err
	}
	r.serve(lis)
	return nil
}

// Close takes the relay down for good.
func (r *Relay) Close() { r.Down() }
