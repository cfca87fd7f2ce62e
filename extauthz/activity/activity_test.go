package activity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeStore keeps the newest time per digest, as store.Store does, and can fail or block.
type fakeStore struct {
	mu      sync.Mutex
	times   map[string]time.Time
	batches []map[string]time.Time
	fail    error
	// entered, when set, is closed when a write starts; the write then waits for release.
	entered, release chan struct{}
}

func newFake() *fakeStore { return &fakeStore{times: map[string]time.Time{}} }

func (f *fakeStore) RecordActivity(ctx context.Context, times map[string]time.Time) error {
	f.mu.Lock()
	entered, release, fail := f.entered, f.release, f.fail
	f.entered = nil
	f.mu.Unlock()
	if entered != nil {
		close(entered)
		<-release
	}
	if fail != nil {
		return fail
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, maps.Clone(times))
	for d, t := range times {
		if t.After(f.times[d]) {
			f.times[d] = t
		}
	}
	return nil
}

func (f *fakeStore) get(d string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.times[d]
}

var (
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	t0    = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

func TestRecordKeepsTheNewestPerKey(t *testing.T) {
	for name, tc := range map[string]struct {
		records []time.Duration
		want    time.Duration
	}{
		"one use":            {[]time.Duration{5}, 5},
		"in order":           {[]time.Duration{1, 2, 3}, 3},
		"out of order":       {[]time.Duration{3, 1, 2}, 3},
		"same time twice":    {[]time.Duration{4, 4}, 4},
		"older after newest": {[]time.Duration{9, 8}, 9},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			r := New(f, Options{}, quiet, nil)
			for _, s := range tc.records {
				r.Record("d", t0.Add(s*time.Second))
			}
			if r.Pending() != 1 {
				t.Errorf("pending = %d, want 1: uses of one key make one entry", r.Pending())
			}
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, want := f.get("d"), t0.Add(tc.want*time.Second); !got.Equal(want) {
				t.Errorf("stored %v, want %v", got, want)
			}
			if r.Pending() != 0 {
				t.Errorf("pending after a flush = %d", r.Pending())
			}
		})
	}
}

func TestFlushOfNothingWritesNothing(t *testing.T) {
	f := newFake()
	if err := New(f, Options{}, quiet, nil).Flush(context.Background()); err != nil || len(f.batches) != 0 {
		t.Errorf("Flush with nothing pending: %v, %d writes", err, len(f.batches))
	}
}

// A failed write puts the batch back; a use recorded meanwhile with a newer time wins, an older
// one does not, and the next flush writes the newest of both.
func TestFailedFlushLosesNothing(t *testing.T) {
	f := newFake()
	reg := prometheus.NewRegistry()
	r := New(f, Options{}, quiet, reg)
	r.Record("a", t0.Add(10*time.Second))
	r.Record("b", t0.Add(10*time.Second))
	r.Record("c", t0.Add(10*time.Second))

	f.fail = errors.New("redis: connection refused")
	f.entered, f.release = make(chan struct{}), make(chan struct{})
	entered := f.entered
	done := make(chan error)
	go func() { done <- r.Flush(context.Background()) }()
	<-entered
	// While the failing write is in flight:
	r.Record("a", t0.Add(20*time.Second)) // newer: must win
	r.Record("b", t0.Add(5*time.Second))  // older: must not replace the batch's time
	r.Record("d", t0.Add(7*time.Second))  // new key
	close(f.release)
	if err := <-done; err == nil {
		t.Fatal("Flush reported success for a failed write")
	}
	if r.Pending() != 4 {
		t.Errorf("pending after a failed flush = %d, want 4", r.Pending())
	}

	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]time.Duration{"a": 20, "b": 10, "c": 10, "d": 7} {
		if got := f.get(d); !got.Equal(t0.Add(want * time.Second)) {
			t.Errorf("%s: stored %v, want +%ds", d, got, want)
		}
	}
	if got := testutil.ToFloat64(r.metrics.flushes.WithLabelValues(resultError)); got != 1 {
		t.Errorf("error flushes = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.metrics.flushes.WithLabelValues(resultOK)); got != 1 {
		t.Errorf("ok flushes = %v, want 1", got)
	}
}

func TestPendingCapDropsNewKeysOnly(t *testing.T) {
	f := newFake()
	r := New(f, Options{MaxPending: 2}, quiet, nil)
	r.Record("a", t0)
	r.Record("b", t0)
	r.Record("c", t0)                  // over the cap: dropped
	r.Record("a", t0.Add(time.Second)) // a key already held is still updated
	if got := testutil.ToFloat64(r.metrics.dropped); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.get("a").Equal(t0.Add(time.Second)) || !f.get("b").Equal(t0) || !f.get("c").IsZero() {
		t.Errorf("stored %v", f.times)
	}
}

// Run flushes on its interval, and once more when its context ends, so that the uses of the
// last interval before a shutdown are kept.
func TestRunFlushesPeriodicallyAndOnShutdown(t *testing.T) {
	f := newFake()
	r := New(f, Options{Interval: 20 * time.Millisecond}, quiet, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- r.Run(ctx) }()

	r.Record("a", t0)
	deadline := time.Now().Add(10 * time.Second)
	for f.get("a").IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("no periodic flush within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Stop the ticker from winning the race: the last use is recorded and the context ended
	// before the next tick can matter; the final flush must write it either way.
	r.Record("b", t0.Add(time.Minute))
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if !f.get("b").Equal(t0.Add(time.Minute)) {
		t.Error("the use recorded before shutdown was not flushed")
	}
}

func TestFinalFlushFailureIsLogged(t *testing.T) {
	f := newFake()
	f.fail = errors.New("redis: i/o timeout")
	var log strings.Builder
	r := New(f, Options{}, slog.New(slog.NewTextHandler(&log, nil)), nil)
	r.Record("a", t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.FinalFlush(ctx) // an ended context must not stop the last write
	if !strings.Contains(log.String(), "last-use times are lost") || !strings.Contains(log.String(), "i/o timeout") {
		t.Errorf("log = %q; want the loss reported with its cause", log.String())
	}
	if strings.Contains(log.String(), "level=INFO") {
		t.Error("the loss was logged below warning level")
	}
}

// Many goroutines recording while flushes run: every key ends with its newest time.
func TestConcurrentRecordAndFlush(t *testing.T) {
	f := newFake()
	r := New(f, Options{}, quiet, nil)
	const keys, uses = 50, 200
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			d := string(rune('A' + k))
			for i := range uses {
				r.Record(d, t0.Add(time.Duration(i)*time.Second))
			}
		})
	}
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			default:
				_ = r.Flush(context.Background())
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-flushed
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		d := string(rune('A' + k))
		if got := f.get(d); !got.Equal(t0.Add((uses - 1) * time.Second)) {
			t.Errorf("%s: stored %v, want the newest use", d, got)
		}
	}
}
