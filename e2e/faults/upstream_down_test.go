package faults

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"

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
	faultload.Eventually(t, time.Minute, "the edge serves "+name, func() error { return clusterAnswers(ctx, name, 200) })

	set := faultload.NewKeySet(t)
	others := faultload.StartLoad(set.Probes, 3)
	defer others.Cancel()
	scoped := set.Probes[1].Key // scoped to /version
	down := faultload.StartLoad([]*faultload.Probe{
		{Name: "admin on the downed cluster", Key: platform.AdminKey, Path: clusterPath(name) + "/version"},
		{Name: "scoped key out of scope on the downed cluster", Key: scoped, Path: clusterPath(name) + "/api", Refuse: true},
		{Name: "unknown key on the downed cluster", Key: "unknown-" + randomSuffix(), Path: clusterPath(name) + "/version", Refuse: true},
	}, 1)
	defer down.Cancel()
	others.WaitFor(t, 200)
	down.WaitFor(t, 50)

	down.Phase.Store(int32(faultload.Faulted))
	others.Phase.Store(int32(faultload.Faulted))
	downAt := time.Now()
	r.down()
	down.WaitFor(t, 100)
	others.WaitFor(t, 200)

	upAt := time.Now()
	if err := r.up(); err != nil {
		t.Fatal(err)
	}
	faultload.Eventually(t, time.Minute, name+" serves again by itself", func() error { return clusterAnswers(ctx, name, 200) })
	recovered503 := time.Since(upAt)
	down.Phase.Store(int32(faultload.Recovered))
	others.Phase.Store(int32(faultload.Recovered))
	down.WaitFor(t, 50)
	others.WaitFor(t, 200)
	others.Stop(t)
	down.Stop(t)

	otherUnavailable := others.Counts()[faultload.Faulted][faultload.Unavailable]
	if otherUnavailable > 0 {
		t.Errorf("%d answers on demo were 503 while another cluster was down", otherUnavailable)
	}
	downCounts := down.Counts()
	downUnavailable, downAnswers := downCounts[faultload.Faulted][faultload.Unavailable], 0
	for o := range faultload.Outcomes {
		downAnswers += downCounts[faultload.Faulted][o]
	}
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
