package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// NodeTimeout is the cluster-node-timeout of StartCluster's nodes: how long a master must be
// unreachable before its replica takes over. Short, so that a test's failover takes seconds;
// production keeps the default (15 s) or its own.
const NodeTimeout = time.Second

// clusterArgs are the flags of a Cluster node. The node's state (nodes.conf) lives in its data
// directory, so that a node restarted after a kill rejoins as what the cluster made it.
func (s *Server) clusterArgs() []string {
	return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(s.bus), "--cluster-node-timeout", strconv.Itoa(int(NodeTimeout / time.Millisecond)),
		// A replica may take over however long its link was down: in a test the replica is
		// sometimes stalled on purpose just before its master dies.
		"--cluster-replica-validity-factor", "0"}
}

// ClusterOptions configure a Redis Cluster.
type ClusterOptions struct {
	// Dir holds one directory per node. Required.
	Dir string
	// Masters and ReplicasPerMaster shape the cluster: 3 and 1 make the six nodes of the
	// smallest cluster that survives a master's loss.
	Masters, ReplicasPerMaster int
	// AppendOnly, TLS and Users are every node's (Options).
	AppendOnly bool
	TLS        *pki.CA
	Users      map[string]string
}

// Cluster is a running Redis Cluster.
type Cluster struct {
	// Nodes are every node, in the order given to `redis-cli --cluster create` (which makes the
	// first Masters of them masters); which are masters now is the cluster's business.
	Nodes []*Server
	opts  ClusterOptions
}

// StartCluster starts the nodes and joins them with `redis-cli --cluster create
// --cluster-replicas N --cluster-yes`, as an operator would, then waits until every node says
// the cluster is ok and every replica is in sync with its master. On error, whatever was
// started is stopped.
func StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	if opts.Masters < 3 {
		return nil, fmt.Errorf("a Redis Cluster needs at least 3 masters, not %d", opts.Masters)
	}
	c := &Cluster{opts: opts}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var addrs []string
	for i := range opts.Masters * (1 + opts.ReplicasPerMaster) {
		n, err := Start(ctx, Options{Dir: filepath.Join(opts.Dir, fmt.Sprintf("node-%d", i)), AppendOnly: opts.AppendOnly,
			TLS: opts.TLS, Users: opts.Users, Cluster: true})
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	if _, err := c.Nodes[0].CLI(ctx, args...); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		n.joined = true
	}
	return c, c.WaitHealthy(ctx)
}

// Addrs are the nodes' addresses: what a client's --redis-address lists.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Node is the node at addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// WaitHealthy waits (a minute at most) until every node that runs says cluster_state:ok and
// knows all the others, and every replica's link to its master is up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Redis Cluster is not healthy: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		info, err := n.CLI(ctx, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		want := fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
			return fmt.Errorf("%s: %s", n.Addr, strings.Join(strings.Fields(info)[:min(3, len(strings.Fields(info)))], " "))
		}
		repl, err := n.CLI(ctx, "INFO", "replication")
		if err != nil {
			return err
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s: a replica whose link to its master is down", n.Addr)
		}
	}
	return nil
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// CLI runs redis-cli against the server with args (a command, or --cluster ...) and returns its
// output. It logs in as the first ACL user, with the password in REDISCLI_AUTH rather than on
// the command line, over TLS with a client certificate when the server speaks TLS.
func (s *Server) CLI(ctx context.Context, args ...string) (string, error) {
	bin, err := toolbin.Path("redis-cli")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	host, port, _ := strings.Cut(s.Addr, ":")
	base := []string{"-h", host, "-p", port}
	env := os.Environ()
	for name, password := range s.opts.Users {
		base = append(base, "--user", name)
		env = append(env, "REDISCLI_AUTH="+password)
		break
	}
	if s.opts.TLS != nil {
		dir := filepath.Join(s.opts.Dir, "tls")
		base = append(base, "--tls", "--cacert", s.CAFile, "--cert", filepath.Join(dir, "redis-peer.crt"), "--key", filepath.Join(dir, "redis-peer.key"))
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("redis-cli %s on %s: %w: %s%s", strings.Join(args, " "), s.Addr, err, stderr.String(), lastLines(out.String(), 5))
	}
	// redis-cli exits 0 on a command's error reply, printing it ("(error) ..." on a terminal,
	// the bare message otherwise).
	if o := out.String(); strings.HasPrefix(o, "ERR ") || strings.HasPrefix(o, "NOAUTH") || strings.HasPrefix(o, "WRONGPASS") {
		return "", fmt.Errorf("redis-cli %s on %s: %s", strings.Join(args, " "), s.Addr, strings.TrimSpace(o))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// clusterNode is a line of CLUSTER NODES.
type clusterNode struct {
	id, addr, masterID string
	master, failed     bool
	slots              [][2]int
}

// nodes is CLUSTER NODES as s sees it.
func (s *Server) nodes(ctx context.Context) ([]clusterNode, error) {
	out, err := s.CLI(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var list []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := "," + f[2] + ","
		cn := clusterNode{id: f[0], addr: addr, masterID: f[3], master: strings.Contains(flags, ",master,"),
			failed: strings.Contains(flags, ",fail,") || strings.Contains(flags, ",fail?,")}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				cn.slots = append(cn.slots, [2]int{a, b})
			}
		}
		list = append(list, cn)
	}
	return list, nil
}

// ErrNoMaster: the running nodes do not (yet) agree on one healthy master for the slot.
var ErrNoMaster = errors.New("the nodes do not agree on a master for the slot")

// MasterOf is the node that every running node names as the master of key's slot, and its
// replicas by the same view. While a failover is on its way the nodes may disagree or name a
// failed master: that is ErrNoMaster, to be asked again. A frozen node (Freeze) holds the
// answer until it thaws (or its 30 s redis-cli timeout): name the master before freezing.
func (c *Cluster) MasterOf(ctx context.Context, key string) (master *Server, replicas []*Server, err error) {
	var first *Server
	for _, n := range c.Nodes {
		if n.Running() {
			first = n
			break
		}
	}
	if first == nil {
		return nil, nil, errors.New("no node of the cluster runs")
	}
	out, err := first.CLI(ctx, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return nil, nil, err
	}
	slot, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return nil, nil, fmt.Errorf("CLUSTER KEYSLOT %s: %q", key, out)
	}
	var masterID string
	var view []clusterNode
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		list, err := n.nodes(ctx)
		if err != nil {
			return nil, nil, err
		}
		id := ""
		for _, cn := range list {
			for _, r := range cn.slots {
				if cn.master && !cn.failed && slot >= r[0] && slot <= r[1] {
					id = cn.id
				}
			}
		}
		if id == "" || (masterID != "" && id != masterID) {
			return nil, nil, fmt.Errorf("%w %d (%s names %q, another %q)", ErrNoMaster, slot, n.Addr, id, masterID)
		}
		masterID, view = id, list
	}
	for _, cn := range view {
		switch {
		case cn.id == masterID:
			master = c.Node(cn.addr)
		case cn.masterID == masterID && !cn.failed:
			if r := c.Node(cn.addr); r != nil {
				replicas = append(replicas, r)
			}
		}
	}
	if master == nil {
		return nil, nil, fmt.Errorf("the master of slot %d is at an address of no node of this cluster", slot)
	}
	return master, replicas, nil
}
