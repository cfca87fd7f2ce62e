package follow

import "testing"

// A lookup keeps what it read only if its key was not invalidated meanwhile; after more
// invalidations than are remembered, or a purge, nothing is kept.
func TestRecent(t *testing.T) {
	var r Recent
	gen := r.Gen()
	r.Add("a")
	if !r.ChangedSince(gen, "a") || r.ChangedSince(gen, "b") {
		t.Errorf("after invalidating a: a changed %v, b changed %v; want true, false", r.ChangedSince(gen, "a"), r.ChangedSince(gen, "b"))
	}
	if r.ChangedSince(r.Gen(), "a") {
		t.Error("a lookup that began after the invalidation counts it")
	}
	gen = r.Gen()
	for range RecentSize + 1 {
		r.Add("x")
	}
	if !r.ChangedSince(gen, "b") {
		t.Error("more invalidations than remembered: want everything counted as changed")
	}
	gen = r.Gen()
	r.Purge()
	if !r.ChangedSince(gen, "b") {
		t.Error("after a purge: want everything counted as changed")
	}
}
