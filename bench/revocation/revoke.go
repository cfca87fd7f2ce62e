package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// revokeTimeout bounds one revocation: past extauthz's --key-cache-ttl (30 s), a replica that
// still allows the key is broken, not slow.
const revokeTimeout = 45 * time.Second

// noPollsSettle is how long the bench waits after a revocation without polls before it reads
// the replicas' metrics: far above the lags measured, so that the scrapes do not compete with
// the replicas' following of the stream (a replica that is later is still measured exactly).
const noPollsSettle = 100 * time.Millisecond

// refusalsAfterFirst is how many more polls each replica must refuse after its first refusal.
const refusalsAfterFirst = 3

// sample is one revocation.
type sample struct {
	disable bool            // disabled (else deleted)
	call    time.Duration   // the store call, from sending it to its acknowledgement
	lags    []time.Duration // per replica: the acknowledgement → its first refusal received
	lows    []time.Duration // per replica: the acknowledgement → its last allowed poll sent (0 if before)
	late    int             // allowed answers to polls sent after the acknowledgement, all replicas
	rtts    []time.Duration // round trips of polls answered from the cache before the revocation
	// applied is, per replica, what extauthz's own keygate_extauthz_revocation_lag_seconds
	// observed for the revocation (from its sum, exactly): from Redis's append to the replica's
	// cache dropping the key, free of the polls' round trips. The append comes before the
	// acknowledgement, so this is never less than the time from the acknowledgement.
	applied []time.Duration
}

// all is the time until every replica had refused; without polls, until every replica had
// dropped the key (after which it refuses it).
func (s sample) all() time.Duration {
	if len(s.lags) == 0 {
		return maxOf(s.applied)
	}
	return maxOf(s.lags)
}

// revoker makes keys, has every replica cache them, and revokes them.
type revoker struct {
	st   *store.Store
	pool *pool
	seq  int
	// noPolls: revoke without polling the replicas (-polls=false), so that the polls' Checks
	// take no CPU from the replicas; the figures are then extauthz's own (sample.applied).
	noPolls bool
}

// revoke creates a key, waits until every replica has applied its creation event, has each one
// cache it (an allowed Check), then deletes or disables it while every replica is polled back
// to back with Checks for it (unless noPolls).
func (rv *revoker) revoke(ctx context.Context, disable bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	rv.seq++
	k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: "bench"}}
	k.Name = fmt.Sprintf("revoked-%06d", rv.seq)
	plain, err := rv.st.Create(ctx, k)
	if err != nil {
		return sample{}, err
	}
	rv.changed()
	created, err := rv.awaitEvents(ctx)
	if err != nil {
		return sample{}, err
	}
	req := checkRequest(plain)
	for _, r := range rv.pool.reps {
		// The creation event is applied and no other comes: this lookup reads Redis and is
		// kept, so the revocation below has a cached key to drop at every replica.
		if a, err := check(ctx, r.client, req); err != nil || a != allowed {
			return sample{}, fmt.Errorf("%s: a new key: %v, %v; want allowed", r.name, a, err)
		}
	}
	var s sample
	if rv.noPolls {
		s, err = rv.revokeOnly(ctx, k.Name, disable)
		// Scraping ten replicas' /metrics costs them more CPU than the revocation: only once
		// they have had time to apply it, so that the figure is theirs, not the scrapes'.
		time.Sleep(noPollsSettle)
	} else {
		s, err = rv.measure(ctx, k.Name, req, disable)
	}
	rv.changed()
	if err != nil {
		return s, err
	}
	revoked, err := rv.awaitEvents(ctx)
	if err != nil {
		return s, err
	}
	for i, r := range rv.pool.reps {
		lag, err := revoked[i].lagSince(created[i])
		if err != nil {
			return s, fmt.Errorf("%s: %w", r.name, err)
		}
		s.applied = append(s.applied, lag)
	}
	return s, nil
}

// revokeOnly deletes or disables the key, and times the store's call.
func (rv *revoker) revokeOnly(ctx context.Context, name string, disable bool) (sample, error) {
	sent, ack, err := rv.revokeKey(ctx, name, disable)
	return sample{disable: disable, call: ack.Sub(sent)}, err
}

// revokeKey deletes or disables the key, and returns when the call was sent and when the
// store acknowledged it.
func (rv *revoker) revokeKey(ctx context.Context, name string, disable bool) (sent, ack time.Time, err error) {
	sent = time.Now()
	if disable {
		err = rv.st.SetDisabled(ctx, name, true)
	} else {
		err = rv.st.Delete(ctx, name)
	}
	return sent, time.Now(), err
}

// measure polls every replica with req from before the revocation until it refuses.
func (rv *revoker) measure(ctx context.Context, name string, req *authv3.CheckRequest, disable bool) (sample, error) {
	n := len(rv.pool.reps)
	s := sample{disable: disable, lags: make([]time.Duration, n), lows: make([]time.Duration, n)}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		ack     time.Time
		acked   = make(chan struct{})
		started sync.WaitGroup
		done    sync.WaitGroup
		mu      sync.Mutex
		errs    []error
	)
	for i, r := range rv.pool.reps {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			p := poll(pctx, r.client, req, started.Done, acked, &ack)
			mu.Lock()
			defer mu.Unlock()
			if p.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, p.err))
				return
			}
			s.lags[i], s.lows[i] = p.firstRefused.Sub(ack), max(p.lastAllowedSent.Sub(ack), 0)
			s.late, s.rtts = s.late+p.late, append(s.rtts, p.rtts...)
		}()
	}
	started.Wait() // every poller has had one answer: all are polling
	sent, ackAt, err := rv.revokeKey(ctx, name, disable)
	ack = ackAt
	close(acked)
	s.call = ack.Sub(sent)
	if err != nil {
		cancel() // no replica will refuse a key that was not revoked
		done.Wait()
		return s, err
	}
	done.Wait()
	return s, errors.Join(errs...)
}

// polled is one replica's polls of one revocation.
type polled struct {
	firstRefused time.Time // when its first refusal arrived
	// lastAllowedSent is when the last poll allowed was sent: the replica applied the
	// revocation after that, so lastAllowedSent - ack is a lower bound of its lag.
	lastAllowedSent time.Time
	late            int // allowed answers to polls sent after the acknowledgement
	rtts            []time.Duration
	err             error
}

// poll sends req back to back: calls started after the first answer, reads *ack once acked is
// closed, and returns after refusalsAfterFirst more refusals once the acknowledgement is known.
// An allowed answer after a refusal is a false allow: the replica served a key it had already
// refused, which the cache's rules forbid, and it fails the run.
func poll(ctx context.Context, c authv3.AuthorizationClient, req *authv3.CheckRequest, started func(), acked <-chan struct{}, ack *time.Time) polled {
	var p polled
	var allowedSent []time.Time // sends of allowed answers, to compare with the acknowledgement
	known, refusals := false, 0
	for first := true; ; first = false {
		if !known {
			select {
			case <-acked:
				known = true
			default:
			}
		}
		sent := time.Now()
		a, err := check(ctx, c, req)
		got := time.Now()
		if first {
			started()
		}
		switch {
		case err != nil:
			p.err = err
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				p.err = fmt.Errorf("still allowed the key %s after the revocation was acknowledged", revokeTimeout)
			}
			return p
		case a == allowed && refusals > 0:
			p.err = fmt.Errorf("false allow: the key was allowed %s after this replica first refused it", sent.Sub(p.firstRefused))
			return p
		case a == allowed:
			allowedSent = append(allowedSent, sent)
			p.lastAllowedSent = sent
			if !known {
				p.rtts = append(p.rtts, got.Sub(sent))
			}
		default:
			if refusals == 0 {
				p.firstRefused = got
			}
			refusals++
		}
		if known && refusals > refusalsAfterFirst {
			for _, t := range allowedSent {
				if t.After(*ack) {
					p.late++
				}
			}
			return p
		}
	}
}

// changed notes one more access-key event, which every running replica will apply.
func (rv *revoker) changed() {
	for _, r := range rv.pool.reps {
		r.events++
	}
}

// awaitEvents waits until every replica has applied every change made so far, and returns
// their states then. It fails if a replica's stream broke (its cache was emptied: what follows
// would not measure the stream) or it applied more changes than the bench made (another
// writer).
func (rv *revoker) awaitEvents(ctx context.Context) ([]cacheState, error) {
	states := make([]cacheState, len(rv.pool.reps))
	errc := make(chan error, len(rv.pool.reps))
	for i, r := range rv.pool.reps {
		go func() {
			var err error
			states[i], err = rv.awaitReplica(ctx, r)
			errc <- err
		}()
	}
	var errs []error
	for range rv.pool.reps {
		errs = append(errs, <-errc)
	}
	return states, errors.Join(errs...)
}

func (rv *revoker) awaitReplica(ctx context.Context, r *replica) (cacheState, error) {
	for {
		m, err := rv.pool.scrape(ctx, r)
		switch {
		case err != nil:
		case m.restarts > 0 || !m.live:
			err = fmt.Errorf("%s: its key-store event stream broke (%d restarts)", r.name, m.restarts)
		case m.invalidations > r.events:
			err = fmt.Errorf("%s: applied %d key changes, the bench made %d", r.name, m.invalidations, r.events)
		case m.invalidations == r.events:
			return m, nil
		default:
			// Not yet: scraping costs the replica CPU, so not in a tight loop.
			time.Sleep(3 * time.Millisecond)
			continue
		}
		return m, fmt.Errorf("waiting for %s to apply the key's changes: %w", r.name, err)
	}
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for i, d := range ds {
		if i == 0 || d > m {
			m = d
		}
	}
	return m
}
