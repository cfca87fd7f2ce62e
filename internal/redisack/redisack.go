// Package redisack makes a write wait for Redis replicas before it is reported done.
//
// Redis replicates asynchronously: a write the master acknowledged can be lost when Sentinel
// promotes a replica that had not received it yet. For an access key that is worse than a lost
// create: a delete or a disable that is lost makes a revoked key work again. WAIT N T, sent on
// the connection that made the write, blocks until N replicas have acknowledged every write of
// that connection (or T passes) and says how many did; WAIT on another connection says nothing
// about this write, which is why Do runs the write and the WAIT on one dedicated connection.
//
// With Redis Cluster that connection is to the master of the slot the write goes to (its key's
// hash tag), and WAIT counts that master's replicas: the ones a failover of that slot would
// promote. A write must then stay in one slot, and be one command (a script), so that sending it
// again after a redirection repeats nothing.
package redisack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Acks is how many replicas must hold a write before it is reported done. The zero value
// waits for none: acknowledged means on the master.
type Acks struct {
	Replicas int
	Timeout  time.Duration
}

// ErrNotReplicated is matched (errors.Is) by a write that fewer replicas than asked for
// acknowledged: a retriable failure, to be answered as unavailable.
var ErrNotReplicated = errors.New("not acknowledged by enough Redis replicas")

// NotReplicatedError is the error of such a write. The write is on the master and may still
// reach the replicas (or be lost by a failover): its outcome is unknown, as after a timeout.
type NotReplicatedError struct {
	Want, Got int
	Timeout   time.Duration
}

func (e *NotReplicatedError) Error() string {
	return fmt.Sprintf("the write reached the Redis master but %d of the %d replicas required acknowledged it within %s: it stands unless a failover loses it; retry once the replicas answer (a retried delete may then find nothing to delete: the first one stood)",
		e.Got, e.Want, e.Timeout)
}

// Is makes errors.Is(err, ErrNotReplicated) true.
func (e *NotReplicatedError) Is(target error) bool { return target == ErrNotReplicated }

// Do runs write on one connection of rdb and, when a.Replicas > 0, then WAIT on that same
// connection. With Redis Cluster the connection is to the master of key's slot, and WAIT counts
// that master's replicas: write must then be one command whose keys are all in key's slot.
// With no replicas to wait for, write runs on rdb itself.
func (a Acks) Do(ctx context.Context, rdb redis.UniversalClient, key string, write func(redis.Cmdable) error) error {
	if a.Replicas <= 0 {
		return write(rdb)
	}
	switch c := rdb.(type) {
	case *redis.Client:
		return a.on(ctx, c, write)
	case *redis.ClusterClient:
		return a.onCluster(ctx, c, key, write)
	}
	return fmt.Errorf("waiting for replica acknowledgements: unsupported Redis client %T", rdb)
}

// on runs write and WAIT on one connection of c.
func (a Acks) on(ctx context.Context, c *redis.Client, write func(redis.Cmdable) error) error {
	conn := c.Conn()
	defer conn.Close()
	if err := write(conn); err != nil {
		return err
	}
	return a.Wait(ctx, conn)
}

// clusterAttempts bounds how often a write is sent again to the slot's master after an answer
// that says it was not run there (MOVED, CLUSTERDOWN...), as the cluster client does.
const clusterAttempts = 4

// onCluster runs write and WAIT on a connection to the master of key's slot. The cluster
// client's own routing is bypassed for WAIT's sake, so its redirections are followed here: an
// answer that says the write did not run (the slot moved, a failover is on its way) reloads the
// slot map and tries again, a little later; any other error is returned, since the write may
// have run.
func (a Acks) onCluster(ctx context.Context, c *redis.ClusterClient, key string, write func(redis.Cmdable) error) error {
	var err error
	for attempt := range clusterAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		var node *redis.Client
		if node, err = c.MasterForKey(ctx, key); err != nil {
			return err
		}
		var wrote bool
		err = a.on(ctx, node, func(conn redis.Cmdable) error {
			werr := write(conn)
			wrote = werr == nil || !notRun(werr)
			return werr
		})
		if err == nil || wrote {
			if err != nil && isNetwork(err) {
				c.ReloadState(ctx)
			}
			return err
		}
		c.ReloadState(ctx)
	}
	return err
}

// notRun says whether err is an answer (or a failed dial) that proves the write did not run.
func notRun(err error) bool {
	if _, ok := redis.IsMovedError(err); ok {
		return true
	}
	if _, ok := redis.IsAskError(err); ok {
		return true
	}
	var op *net.OpError
	return redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsReadOnlyError(err) ||
		redis.IsLoadingError(err) || (errors.As(err, &op) && op.Op == "dial")
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// Waiter is a connection WAIT can be sent on: a redis.Conn, or the redis.Tx of a WATCH
// transaction (which holds its own connection).
type Waiter interface {
	Wait(ctx context.Context, numSlaves int, timeout time.Duration) *redis.IntCmd
}

// Wait sends WAIT on c when a.Replicas > 0 and returns a *NotReplicatedError when fewer
// replicas acknowledged the connection's writes.
func (a Acks) Wait(ctx context.Context, c Waiter) error {
	if a.Replicas <= 0 {
		return nil
	}
	got, err := c.Wait(ctx, a.Replicas, a.Timeout).Result()
	if err != nil {
		return fmt.Errorf("the write reached the Redis master; waiting for %d replicas: %w", a.Replicas, err)
	}
	if int(got) < a.Replicas {
		return &NotReplicatedError{Want: a.Replicas, Got: int(got), Timeout: a.Timeout}
	}
	return nil
}

// Check refuses a.Replicas > 0 on a client that cannot honour it (a Sentinel-routed cluster
// client, or any client but a plain or a Cluster one).
func (a Acks) Check(rdb redis.UniversalClient) error {
	switch rdb.(type) {
	case *redis.Client, *redis.ClusterClient:
		return nil
	}
	if a.Replicas > 0 {
		return fmt.Errorf("waiting for replica acknowledgements: unsupported Redis client %T", rdb)
	}
	return nil
}
