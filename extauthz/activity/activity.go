// Package activity records when access keys are used, off the request path: checks note the
// time per key in memory, and a loop writes the newest time of every key to the key store in
// one batch per interval (status.lastActivity, which ttlAfterLastActivity counts from).
//
// Nothing is lost on a failed write: the batch goes back into memory and is written with the
// next one. Times only ever move forwards, in memory and in the store.
package activity

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Flusher writes a batch of last-use times keyed by key digest (store.Store in production). It
// must keep the newer of a given and a stored time, so that batches may be retried or overlap.
type Flusher interface {
	RecordActivity(ctx context.Context, times map[string]time.Time) error
}

// Defaults of Options.
const (
	DefaultInterval   = 10 * time.Second
	DefaultMaxPending = 100_000
	// FinalFlushTimeout bounds the flush on shutdown, so that an unreachable Redis cannot hold
	// the process up.
	FinalFlushTimeout = 5 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// Interval between flushes; 0 means DefaultInterval.
	Interval time.Duration
	// MaxPending caps the distinct keys held between flushes; 0 means DefaultMaxPending. Only
	// keys that passed a check are recorded, so the map holds at most the keys in use during one
	// interval and the cap is a safeguard, not expected to be reached.
	MaxPending int
}

// Recorder collects last-use times and flushes them in batches. Its methods are safe for
// concurrent use.
type Recorder struct {
	flusher Flusher
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	pending map[string]time.Time
}

// New returns a recorder that flushes to f and registers its metrics with reg (nil: none).
func New(f Flusher, opts Options, log *slog.Logger, reg prometheus.Registerer) *Recorder {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	r := &Recorder{flusher: f, opts: opts, log: log, pending: map[string]time.Time{}}
	r.metrics = newMetrics(reg, r.Pending)
	return r
}

// Record notes that the key with digest was used at t. It never blocks on I/O: it takes a
// mutex for a map update. A time older than the one already held for the digest is ignored.
func (r *Recorder) Record(digest string, t time.Time) {
	r.mu.Lock()
	ok := put(r.pending, digest, t, r.opts.MaxPending)
	r.mu.Unlock()
	if !ok {
		r.metrics.dropped.Inc()
	}
}

// Pending is how many keys wait for the next flush.
func (r *Recorder) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Flush writes what is pending. On failure the batch is merged back, keeping the newer time
// per key, to be written by the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	if len(batch) == 0 {
		r.mu.Unlock()
		return nil
	}
	// Swapping the map keeps the lock short: checks go on recording into a fresh map while the
	// batch is written.
	r.pending = make(map[string]time.Time, len(batch))
	r.mu.Unlock()

	if err := r.flusher.RecordActivity(ctx, batch); err != nil {
		r.mu.Lock()
		// The cap is not applied here: the batch was already accepted, and dropping it would
		// lose times. Record drops new keys until a flush succeeds.
		mergeNewest(r.pending, batch)
		r.mu.Unlock()
		r.metrics.flushes.WithLabelValues(resultError).Inc()
		return err
	}
	r.metrics.flushes.WithLabelValues(resultOK).Inc()
	return nil
}

// Run flushes every interval until ctx ends, then once more, bounded by FinalFlushTimeout.
// Failures are logged and retried with the next flush. It returns nil.
func (r *Recorder) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("recording key activity failed; retrying with the next flush", "error", err, "pending", r.Pending())
			}
		case <-ctx.Done():
			r.FinalFlush(ctx)
			return nil
		}
	}
}

// FinalFlush flushes with FinalFlushTimeout, even when ctx has ended, and logs a failure. For
// shutdown: after the last check, nothing may be left unwritten.
func (r *Recorder) FinalFlush(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalFlushTimeout)
	defer cancel()
	if err := r.Flush(fctx); err != nil {
		r.log.Error("recording key activity on shutdown failed: last-use times are lost", "error", err, "keys", r.Pending())
	}
}

// put keeps the newer of t and m[digest]. A digest not in m is added only while m has fewer
// than limit entries; put reports false when it had to drop it.
func put(m map[string]time.Time, digest string, t time.Time, limit int) bool {
	old, ok := m[digest]
	switch {
	case ok:
		if t.After(old) {
			m[digest] = t
		}
	case len(m) < limit:
		m[digest] = t
	default:
		return false
	}
	return true
}

// mergeNewest puts every time of src into dst, keeping the newer time per key.
func mergeNewest(dst, src map[string]time.Time) {
	for d, t := range src {
		if old, ok := dst[d]; !ok || t.After(old) {
			dst[d] = t
		}
	}
}
