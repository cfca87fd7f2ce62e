package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The bench's figures mean something only if a wrong or short echo fails the run.
func TestReadCheckFailsOnAWrongOrMissingByte(t *testing.T) {
	want := bytes.Repeat([]byte("keygate "), 100_000)
	if err := readCheck(bytes.NewReader(want), want); err != nil {
		t.Fatalf("the same bytes: %v", err)
	}
	wrong := bytes.Clone(want)
	wrong[654_321] ^= 1
	if err := readCheck(bytes.NewReader(wrong), want); err == nil || !strings.Contains(err.Error(), "offset 654321") {
		t.Errorf("one flipped byte: got %v, want a failure at offset 654321", err)
	}
	if err := readCheck(bytes.NewReader(want[:len(want)-1]), want); err == nil {
		t.Error("one byte short: no failure")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	if p50, p99 := percentile(ds, 0.5), percentile(ds, 0.99); p50 != 51 || p99 != 100 {
		t.Errorf("p50, p99 of 1..100 = %d, %d; want 51, 100", p50, p99)
	}
}
