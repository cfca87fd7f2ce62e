package localdev

import (
	"context"
	"errors"
	"strings"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

// AccessKeysSlotKey is a Redis key in the hash slot of every access key (keystore/store's
// keygate:{accesskeys}:* keys share the hash tag): its master is the one whose loss matters.
const AccessKeysSlotKey = "{accesskeys}"

// startClusterRedis starts, instead of one Redis, six nodes joined into a Redis Cluster of three
// masters with a replica each (`redis-cli --cluster create`), all TLS only with the same ACL user
// as the single Redis, append-only with an fsync per write. RedisAddr is then every node's
// address, comma-separated: a list without --redis-master-name is Redis Cluster to the
// components (internal/redisflags).
func (p *Platform) startClusterRedis(ctx context.Context, ca *pki.CA, users map[string]string) error {
	p.step("starting Redis Cluster (three masters, three replicas; TLS)")
	c, err := redisserver.StartCluster(ctx, redisserver.ClusterOptions{Dir: p.path("redis-cluster"), Masters: 3, ReplicasPerMaster: 1,
		AppendOnly: true, TLS: ca, Users: users})
	if err != nil {
		return err
	}
	p.redisCluster = c
	p.redisNodes = c.Nodes
	p.redis = c.Nodes[0]
	p.RedisAddr = strings.Join(c.Addrs(), ",")
	return nil
}

// redisClusterMaster is the master of the access keys' slot and its replicas, as every running
// node sees them.
func (p *Platform) redisClusterMaster(ctx context.Context) (master *redisserver.Server, replicas []*redisserver.Server, err error) {
	return p.redisCluster.MasterOf(ctx, AccessKeysSlotKey)
}

// WaitRedisClusterHealthy waits until every running node says the cluster is ok and every
// replica is in sync with its master (Options.RedisCluster only).
func (p *Platform) WaitRedisClusterHealthy(ctx context.Context) error {
	if p.redisCluster == nil {
		return errors.New("the platform runs no Redis Cluster (Options.RedisCluster)")
	}
	return p.redisCluster.WaitHealthy(ctx)
}
