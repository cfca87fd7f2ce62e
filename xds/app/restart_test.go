package app

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Restarting xds under steady load fails no request: Envoy keeps serving its last good
// configuration while xds is away, and catches up with what changed meanwhile once it is back.
func TestXDSRestartUnderLoad(t *testing.T) {
	const path = "/kubernetes/cluster/demo/api"
	t.Cleanup(func() {
		if err := edge.writeTargets(edge.baseTargets()); err != nil {
			t.Error(err)
		}
	})
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := edge.try(path, nil)
				sent.Add(1)
				if err != nil || r.status != http.StatusOK {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s %v", r.status, r.body, err))
				}
			}
		})
	}
	waitSent := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for start := sent.Load(); sent.Load() < start+n; {
			if time.Now().After(deadline) {
				t.Fatalf("load stalled at %d requests", sent.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSent(50)

	if err := edge.stopXDS(); err != nil {
		t.Fatalf("stop xds: %v", err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := edge.startXDS(); err != nil {
				t.Fatalf("restart xds: %v", err)
			}
		}
	})
	// While xds is away: requests keep flowing, and a change to the targets waits for it.
	waitSent(200)
	if err := edge.writeTargets(targets{clusters: []string{"demo", "staging"}}); err != nil {
		t.Fatal(err)
	}
	waitSent(100)
	if r, err := edge.try("/kubernetes/cluster/staging/api", nil); err == nil && r.status == http.StatusOK {
		t.Fatal("staging is served with xds down: the test does not test a restart")
	}

	if err := edge.startXDS(); err != nil {
		t.Fatalf("restart xds: %v", err)
	}
	restarted = true
	eventually(t, "Envoy catches up with the change made while xds was down", func() error {
		r, err := edge.try("/kubernetes/cluster/staging/api", nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("GET staging: %d %s", r.status, r.body)
		}
		return nil
	})
	waitSent(200)
	close(stop)
	wg.Wait()
	t.Logf("%d requests across the restart, %d failed", sent.Load(), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across the xds restart; first: %v", n, sent.Load(), firstFailure.Load())
	}
}
