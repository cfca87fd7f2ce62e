package faults

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/localdev"
)

// TestUpstreamDown takes one connected cluster's API server off the network (its address
// refuses connections, and every open connection to it is cut) under steady traffic to it and
// to demo, then brings it back on the same address: only that cluster answers 503 meanwhile,
// and only to keys that pass (a key that must be refused is still refused: the check comes
// first); demo answers as before; the cluster serves again with no one touching the edge.
//
// The cluster is staging's API server behind a TCP relay the test owns, so that it can go away
// and come back on the same address in milliseconds, as a cluster behind a lost network path
// or a restarted load balancer does, without restarting a kube-apiserver.
func TestUpstreamDown(t *testing.T) {
	ctx := context.Background()
	staging := platform.Clusters[localdev.ClusterStaging]
	r, err := newRelay(strings.TrimPrefix(staging.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	name := "upstream-" + randomSuffix()
	target := platform.ClusterTarget(name, staging)
	target.Upstream.URL = "https://" + r.addr
	editTargets(t, func(d *localdev.Targets) { d.Clusters = append(d.Clusters, target) })
	t.Cleanup(func() { editTargets(t, func(d *localdev.Targets) { d.Clusters = dropCluster(d.Clusters, name) }) })
	eventually(t, time.Minute, "the edge serves "+name, func() error { return clusterAnswers(ctx, name, 200) })

	set := newKeySet(t)
	others := startLoad(set.probes, 3)
	defer others.cancel()
	scoped := set.probes[1].key // scoped to /version
	down := startLoad([]*probe{
		{name: "admin on the downed cluster", key: platform.AdminKey, path: clusterPath(name) + "/version"},
		{name: "scoped key out of scope on the downed cluster", key: scoped, path: clusterPath(name) + "/api", refuse: true},
		{name: "unknown key on the downed cluster", key: "unknown-" + randomSuffix(), path: clusterPath(name) + "/version", refuse: true},
	}, 1)
	defer down.cancel()
	others.waitFor(t, 200)
	down.waitFor(t, 50)

	down.phase.Store(int32(faulted))
	others.phase.Store(int32(faulted))
	downAt := time.Now()
	r.down()
	down.waitFor(t, 100)
	others.waitFor(t, 200)

	upAt := time.Now()
	if err := r.up(); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, name+" serves again by itself", func() error { return clusterAnswers(ctx, name, 200) })
	recovered503 := time.Since(upAt)
	down.phase.Store(int32(recovered))
	others.phase.Store(int32(recovered))
	down.waitFor(t, 50)
	others.waitFor(t, 200)
	others.stop(t)
	down.stop(t)

	others.mu.Lock()
	otherUnavailable := others.counts[faulted][unavailable]
	others.mu.Unlock()
	if otherUnavailable > 0 {
		t.Errorf("%d answers on demo were 503 while another cluster was down", otherUnavailable)
	}
	down.mu.Lock()
	downUnavailable, downAnswers := down.counts[faulted][unavailable], 0
	for o := range outcomes {
		downAnswers += down.counts[faulted][o]
	}
	down.mu.Unlock()
	t.Logf("figures: while down (%s), %d of %d answers on the downed cluster were 503 (the rest: keys refused, as they must be); demo: %d 503s; served again %s after it came back",
		upAt.Sub(downAt).Round(time.Millisecond), downUnavailable, downAnswers, otherUnavailable, recovered503.Round(time.Millisecond))
}

// relay forwards TCP connections from its own loopback address to an upstream, and can go down
// (the address refuses connections, open ones are cut) and up again on the same address.
type relay struct {
	addr, upstream string
	mu             sync.Mutex
	lis            net.Listener
	conns          map[net.Conn]bool
}

func newRelay(upstream string) (*relay, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{addr: lis.Addr().String(), upstream: upstream, conns: map[net.Conn]bool{}}
	r.serve(lis)
	return r, nil
}

func (r *relay) serve(lis net.Listener) {
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

func (r *relay) forward(c net.Conn) {
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
}

// track notes an open pair, or closes it if the relay went down meanwhile.
func (r *relay) track(cs ...net.Conn) bool {
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

// down stops listening and cuts every open connection.
func (r *relay) down() {
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

// up listens on the same address again.
func (r *relay) up() error {
	lis, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.serve(lis)
	return nil
}

func (r *relay) close() { r.down() }
