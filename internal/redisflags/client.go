package redisflags

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterStateReload is how stale a Cluster client's slot map may get without an error to
// prompt a reload (go-redis's own default is a minute).
const ClusterStateReload = 5 * time.Second

// NewClient is redis.NewUniversalClient, with a Redis Cluster client that follows a failover
// in seconds: go-redis reloads its slot map on MOVED, but a master that died answers nothing,
// and its replica's promotion would be noticed only at the next periodic reload (a minute by
// default, during which every command of the dead master's slots fails). Here a command that
// fails on the network reloads the map at once (go-redis spaces reloads 200 ms apart), and the
// periodic reload runs every ClusterStateReload.
func NewClient(opts *redis.UniversalOptions) redis.UniversalClient {
	if opts.MasterName != "" || (len(opts.Addrs) <= 1 && !opts.IsClusterMode) {
		return redis.NewUniversalClient(opts)
	}
	co := opts.Cluster()
	co.ClusterStateReloadInterval = ClusterStateReload
	c := redis.NewClusterClient(co)
	c.AddHook(reloadHook{c})
	return c
}

// reloadHook reloads a Cluster client's slot map when a command fails on the network (a node
// refused the connection, reset it, or did not answer in time): its slots may have moved.
type reloadHook struct{ c *redis.ClusterClient }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) check(ctx context.Context, err error) {
	var reply redis.Error
	if err == nil || ctx.Err() != nil || errors.Is(err, redis.Nil) || (errors.As(err, &reply) && !isNet(err)) {
		return
	}
	h.c.ReloadState(ctx)
}

func isNet(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}
