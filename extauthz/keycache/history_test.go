package keycache

import (
	"testing"

	"github.com/keygate-dev/keygate/keystore/store"
)

func TestJudge(t *testing.T) {
	// The follower started at version 2 (entry a/2) and applied a/3 and a/4.
	var h history
	h.reset(2, "a/2")
	h.add(3, "a/3")
	h.add(4, "a/4")
	var fresh history
	fresh.reset(0, "")
	var blind history
	blind.reset(5, "") // started where the store named no entry
	tests := []struct {
		name    string
		head    store.Head
		applied uint64
		h       *history
		want    verdict
	}{
		{"the newest entry is the one applied last", store.Head{Version: 4, Entry: "a/4"}, 4, &h, current},
		{"the follower passed the read's entry, the same one", store.Head{Version: 3, Entry: "a/3"}, 4, &h, current},
		{"the store is ahead", store.Head{Version: 5, Entry: "a/5"}, 4, &h, ahead},
		{"the same version, another history", store.Head{Version: 4, Entry: "b/4"}, 4, &h, diverged},
		{"the same version, its entry gone", store.Head{Version: 4}, 4, &h, diverged},
		{"an earlier version, another history", store.Head{Version: 3, Entry: "b/3"}, 4, &h, diverged},
		{"an empty store, the follower applied changes", store.Head{}, 4, &h, diverged},
		{"an empty store, never changed", store.Head{}, 0, &fresh, current},
		{"a version passed by more than the history holds", store.Head{Version: 1, Entry: "a/1"}, 4, &h, unknown},
		{"the follower started without knowing its entry", store.Head{Version: 5}, 5, &blind, unknown},
		{"the follower started without knowing its entry, the store names one", store.Head{Version: 5, Entry: "a/5"}, 5, &blind, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(tt.head, tt.applied, tt.h); got != tt.want {
				t.Errorf("judge(%+v, %d) = %v, want %v", tt.head, tt.applied, got, tt.want)
			}
		})
	}
}

// The history remembers historySize entries: an entry passed by more is unknown, not another.
func TestHistoryForgetsOldEntries(t *testing.T) {
	var h history
	h.reset(0, "")
	for v := uint64(1); v <= historySize+1; v++ {
		h.add(v, "a")
	}
	if _, ok := h.entry(1); ok {
		t.Error("entry 1 still known after historySize more")
	}
	if e, ok := h.entry(historySize + 1); !ok || e != "a" {
		t.Errorf("the last entry: %q, %v", e, ok)
	}
}
