package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis; utime 150, stime 50 ticks.
	stat := "4242 (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 1 0 0"
	got, err := parseStat(4242, stat)
	if err != nil || got != 2*time.Second {
		t.Errorf("parseStat = %v, %v; want 2s", got, err)
	}
	if _, err := parseStat(1, "1 (x) S 1 2"); err == nil {
		t.Error("a short stat line: no error")
	}
}

// The running test's own CPU is readable.
func TestCPUOfSelf(t *testing.T) {
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// The running test's threads have been given a CPU at least once.
func TestReadSchedOfSelf(t *testing.T) {
	s, err := ReadSched(os.Getpid())
	if err != nil || s.Slices == 0 {
		t.Fatalf("ReadSched = %+v, %v; want some time slices", s, err)
	}
}

func TestMemoryAndFDsOfSelf(t *testing.T) {
	rss, hwm, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Errorf("Memory(self) = RSS %d, peak %d: want a positive RSS no larger than the peak", rss, hwm)
	}
	if n, err := OpenFDs(os.Getpid()); err != nil || n < 3 {
		t.Errorf("OpenFDs(self) = %d, %v: want at least stdin, stdout and stderr", n, err)
	}
	if _, _, err := Memory(-1); err == nil {
		t.Error("Memory of no process: want an error")
	}
}
