// Package redisack makes a write wait for Redis replicas before it is reported done.
//
// Redis replicates asynchronously: a write the master acknowledged can be lost when Sentinel
// promotes a replica that had not received it yet. For an access key that is worse than a lost
// create: a delete or a disable that is lost makes a revoked key work again. WAIT N T, sent on
// the connection that made the write, blocks until N replicas have acknowledged every write of
// that connection (or T passes) and says how many did; WAIT on another connection says nothing
// about this write, which is why Do runs the write and the WAIT on one dedicated connection.
package redisack

import (
	"context"
	"errors"
	"fmt"
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

// ErrCluster refuses waiting with Redis Cluster: a keyless WAIT would go to an arbitrary node,
// not to the master of the slot that took the write, and prove nothing.
var ErrCluster = errors.New("waiting for replica acknowledgements needs a standalone or Sentinel Redis client, not Redis Cluster (WAIT would go to an arbitrary node)")

// Do runs write on one connection of rdb and, when a.Replicas > 0, then WAIT on that same
// connection. With no replicas to wait for, write runs on rdb itself.
func (a Acks) Do(ctx context.Context, rdb redis.UniversalClient, write func(redis.Cmdable) error) error {
	if a.Replicas <= 0 {
		return write(rdb)
	}
	client, ok := rdb.(*redis.Client)
	if !ok {
		return ErrCluster
	}
	conn := client.Conn()
	defer conn.Close()
	if err := write(conn); err != nil {
		return err
	}
	return a.Wait(ctx, conn)
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

// Check refuses a.Replicas > 0 on a client that cannot honour it (Redis Cluster).
func (a Acks) Check(rdb redis.UniversalClient) error {
	if _, ok := rdb.(*redis.Client); a.Replicas > 0 && !ok {
		return ErrCluster
	}
	return nil
}
