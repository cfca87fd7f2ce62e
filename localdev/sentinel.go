package localdev

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

// SentinelMaster is the master name the Sentinels of Options.Sentinel watch.
const SentinelMaster = "keygate"

// startSentinelRedis starts, instead of one Redis, a master, a replica and three Sentinels
// (quorum two), all TLS only with the same ACL user as the single Redis, so that the
// components find the master through the Sentinels as production's Sentinel setups do.
// RedisAddr is then the Sentinels' addresses, comma-separated.
func (p *Platform) startSentinelRedis(ctx context.Context, ca *pki.CA, users map[string]string) error {
	p.step("starting Redis Sentinel (a master, a replica, three Sentinels; TLS)")
	data := func(name string, of string) redisserver.Options {
		return redisserver.Options{Dir: p.path(name), AppendOnly: true, TLS: ca, Users: users, ReplicaOf: of}
	}
	master, err := redisserver.Start(ctx, data("redis-a", ""))
	if err != nil {
		return err
	}
	p.redisNodes = append(p.redisNodes, master)
	p.redis = master
	replica, err := redisserver.Start(ctx, data("redis-b", master.Addr))
	if err != nil {
		return err
	}
	p.redisNodes = append(p.redisNodes, replica)
	var addrs []string
	for i := range 3 {
		s, err := redisserver.Start(ctx, redisserver.Options{Dir: p.path(fmt.Sprintf("sentinel-%d", i)), TLS: ca, Users: users,
			Sentinel: &redisserver.SentinelOf{MasterName: SentinelMaster, Master: master.Addr, Quorum: 2}})
		if err != nil {
			return err
		}
		p.sentinels = append(p.sentinels, s)
		addrs = append(addrs, s.Addr)
	}
	p.RedisAddr = strings.Join(addrs, ",")
	return nil
}

// RedisMaster is the address the Sentinels currently name as the master; with
// Options.RedisCluster, the master of the access keys' slot (AccessKeysSlotKey) that every
// running node names.
func (p *Platform) RedisMaster(ctx context.Context) (string, error) {
	if p.redisCluster != nil {
		m, _, err := p.redisClusterMaster(ctx)
		if err != nil {
			return "", err
		}
		return m.Addr, nil
	}
	if len(p.sentinels) == 0 {
		return "", errors.New("the platform runs one Redis, no Sentinels (Options.Sentinel) nor Cluster")
	}
	opts, err := p.redisOptions()
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, s := range p.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, TLSConfig: opts.TLSConfig})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no Sentinel names a master: %v", lastErr)
}

// KillRedisMaster kills the current master (RedisMaster) with SIGKILL and leaves it down, so
// that the Sentinels, or the Cluster, fail over to its replica. It returns the killed master's
// address.
func (p *Platform) KillRedisMaster(ctx context.Context) (string, error) {
	addr, err := p.RedisMaster(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range p.redisNodes {
		if n.Addr == addr {
			return addr, n.Kill(ctx)
		}
	}
	return "", fmt.Errorf("the Sentinels name %s, which is none of the platform's Redis servers", addr)
}

// KillRedisNode kills the server at addr with SIGKILL and leaves it down: KillRedisMaster for a
// test that must name the master before it stalls a replica (with a node frozen, asking the
// Cluster's nodes who the master is waits for that node).
func (p *Platform) KillRedisNode(ctx context.Context, addr string) error {
	for _, n := range p.redisNodes {
		if n.Addr == addr {
			return n.Kill(ctx)
		}
	}
	return fmt.Errorf("%s is none of the platform's Redis servers", addr)
}

// RestartRedisNode starts again the server at addr that KillRedisMaster killed: the Sentinels
// (or the Cluster, from the node's nodes.conf) then make it a replica of the new master, so
// that writes which wait for a replica (--redis-min-replica-acks) succeed again.
func (p *Platform) RestartRedisNode(ctx context.Context, addr string) error {
	for _, n := range p.redisNodes {
		if n.Addr == addr {
			return n.Restart(ctx)
		}
	}
	return fmt.Errorf("%s is none of the platform's Redis servers", addr)
}

// FreezeRedisReplica freezes (SIGSTOP) the server that is not the current master (with
// Cluster, the replica of RedisMaster), so that it receives nothing until thaw is called: a
// replica left behind by a stalled link.
func (p *Platform) FreezeRedisReplica(ctx context.Context) (thaw func() error, err error) {
	if p.redisCluster != nil {
		_, replicas, err := p.redisClusterMaster(ctx)
		if err != nil {
			return nil, err
		}
		if len(replicas) == 0 {
			return nil, errors.New("the master of the access keys' slot has no replica")
		}
		return replicas[0].Thaw, replicas[0].Freeze()
	}
	master, err := p.RedisMaster(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range p.redisNodes {
		if n.Addr != master {
			return n.Thaw, n.Freeze()
		}
	}
	return nil, errors.New("the platform has no replica")
}
