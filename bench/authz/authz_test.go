package main

import (
	"io"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary serve the bench's roles, as the bench binary does.
func TestMain(m *testing.M) {
	if runRole() {
		return
	}
	os.Exit(m.Run())
}

// TestHarnessAnswersCorrectly runs every cell once, briefly: each answer's status is what the
// case and key call for (load fails otherwise). No timings are checked.
func TestHarnessAnswersCorrectly(t *testing.T) {
	s := settings{duration: 50 * time.Millisecond, rounds: 1, conns: []int{2}, tls: []bool{false, true}, fillerKey: 20}
	results, _, err := run(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range cases {
		want += 2 * len(c.keys)
	}
	if len(results) != want {
		t.Fatalf("%d cells measured, want %d", len(results), want)
	}
	for cl, fs := range results {
		if fs[0].load.requests == 0 {
			t.Errorf("%+v: no requests answered", cl)
		}
	}
}
