package keycache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"time"

	"github.com/keygate-dev/keygate/keystore/store"
)

// With a lease (Options.Lease), a digest outside the set is refused without any read of Redis:
// the replica holds a lease in the store, renewed every quarter of it and at once after it
// applies a create, and a create is acknowledged only once every replica holding a lease
// applied it or renewed after it (keystore/store/replicas.go tells why a key created a moment
// ago then still works at once on every replica). The replica trusts its set without a read
// while
//   - its last renewal's lease has not run out by this replica's monotonic clock, counted from
//     before the renewal was sent and ended a tenth early for clock drift;
//   - the follower applied that renewal's newest change, that very entry (judge: current), in
//     the same epoch of the set.
//
// Trust ends as each renewal is sent and comes back with its reply, so that a create the store
// saw this replica's renewal for is never refused on an older renewal's word. Whenever the
// replica does not trust its set, unknown digests are proven absent by a version read as
// without a lease (digests.go). A renewal also checks, as a version read does, that Redis did
// not lose data: a flood of unknown keys no longer reads the store's head, so the renewals are
// what notice a loss.

// Leaser is a Source that holds leases for the replicas (store.Store).
type Leaser interface {
	// Renew records that replica id applied every change up to applied and holds a lease for
	// lease from now, and returns the store's newest change, read with the record.
	Renew(ctx context.Context, id string, applied uint64, lease time.Duration) (store.Head, error)
	// Release drops replica id's lease.
	Release(ctx context.Context, id string) error
}

// trust is what the last renewal proved, the zero value nothing; the caller holds mu to read
// or set it.
type trust struct {
	until time.Time // with a monotonic reading
	head  store.Head
	epoch uint64
}

// leaseID names this replica's lease: its host name (a pod's name) and a random suffix, so
// that a restarted replica never takes over its predecessor's lease.
func leaseID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "extauthz"
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// trusted reports whether a digest outside the set may be refused without a read; the caller
// holds mu, and checked that the set is listed and live.
func (c *Cache) trusted() bool {
	t := &c.trust
	return t.epoch == c.epoch && time.Now().Before(t.until) &&
		judge(t.head, c.applied, &c.history) == current
}

// kickRenewal asks holdLease for a renewal now (after a create was applied), unless one is
// already asked for.
func (c *Cache) kickRenewal() {
	if c.renewKick == nil {
		return
	}
	select {
	case c.renewKick <- struct{}{}:
	default:
	}
}

// holdLease renews the lease every quarter of it, and when kicked, until ctx ends; it then
// stops trusting the set and releases the lease, so that creates stop waiting for this
// replica.
func (c *Cache) holdLease(ctx context.Context, l Leaser) {
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.trust = trust{}
			c.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			if err := l.Release(rctx, c.leaseID); err != nil {
				c.log.Warn("could not release this replica's lease; creates wait for it until it runs out", "lease", c.leaseID, "err", err)
			}
			cancel()
			return
		case <-tick.C:
		case <-c.renewKick:
		}
		c.renew(ctx, l)
		tick.Reset(c.opts.Lease / 4)
	}
}

// renew renews the lease and, while the stream is followed, trusts the set on its word.
func (c *Cache) renew(ctx context.Context, l Leaser) {
	c.mu.Lock()
	c.trust = trust{}
	following := c.live && c.digests != nil
	epoch, applied := c.epoch, c.applied
	c.mu.Unlock()
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.opts.Lease/2)
	head, err := l.Renew(rctx, c.leaseID, applied, c.opts.Lease)
	cancel()
	if err != nil {
		c.metrics.renewals[renewError].Inc()
		if ctx.Err() == nil {
			c.log.Debug("could not renew this replica's lease; unknown keys are proven absent by a read meanwhile", "lease", c.leaseID, "err", err)
		}
		return
	}
	c.metrics.renewals[renewOK].Inc()
	if !following {
		return
	}
	c.mu.Lock()
	if c.epoch != epoch || c.digests == nil {
		c.mu.Unlock()
		return
	}
	lost := c.lostData(head, applied)
	if lost == nil {
		c.trust = trust{until: sent.Add(c.opts.Lease - c.opts.Lease/10), head: head, epoch: epoch}
	}
	c.mu.Unlock()
	if lost != nil {
		c.lose(epoch, lost)
	}
}

// Trusted reports whether this replica refuses unknown keys from memory, without a read (for
// the keycache_lease_trusted gauge).
func (c *Cache) Trusted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live && c.digests != nil && c.trusted()
}
