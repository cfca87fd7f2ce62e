package main

import (
	"io"
	"os"
	"path/filepath"
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
	s := settings{duration: 50 * time.Millisecond, rounds: 1, conns: []int{2}, tls: []bool{false, true}, fillerKey: 20, variants: allVariants,
		keys: keyKinds, stat: statMedian}
	results, _, err := run(s, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range withVariants(allVariants) {
		want += 2 * len(c.keys)
	}
	if len(results) != want {
		t.Fatalf("%d cells measured, want %d", len(results), want)
	}
	for cl, fs := range results {
		if fs[0].load.checked == 0 {
			t.Errorf("%+v: no answers checked", cl)
		}
	}
}

// TestProfilesAreKept: a cell of a second or more keeps the CPU profile of the server that
// answered its checks.
func TestProfilesAreKept(t *testing.T) {
	dir := t.TempDir()
	s := settings{duration: time.Second, rounds: 1, conns: []int{2}, tls: []bool{false}, fillerKey: 20, keys: []string{keyAllowed},
		stat: statBest, profiles: dir}
	if _, _, err := run(s, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"extauthz_allowed_c2_tls-false_r1.pprof", "null_allowed_c2_tls-false_r1.pprof"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		// A pprof profile is gzipped protobuf.
		if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
			t.Errorf("%s is not a gzipped profile (%d bytes)", name, len(data))
		}
	}
}
