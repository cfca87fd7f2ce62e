package changelog

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Fingerprint tells entries apart exactly as sameEntry does.
func TestFingerprint(t *testing.T) {
	base := redis.XMessage{ID: "2-0", Values: map[string]any{"at": "1700000000000001", "type": "ADDED", "digest": "d"}}
	tests := []struct {
		name string
		m    redis.XMessage
		same bool
	}{
		{"the same entry", redis.XMessage{ID: "2-0", Values: map[string]any{"digest": "d", "type": "ADDED", "at": "1700000000000001"}}, true},
		{"another ID", redis.XMessage{ID: "3-0", Values: base.Values}, false},
		{"another time: the same version of another history", redis.XMessage{ID: "2-0", Values: map[string]any{"at": "1700000000000002", "type": "ADDED", "digest": "d"}}, false},
		{"a field more", redis.XMessage{ID: "2-0", Values: map[string]any{"at": "1700000000000001", "type": "ADDED", "digest": "d", "activity": ""}}, false},
		{"a field less", redis.XMessage{ID: "2-0", Values: map[string]any{"at": "1700000000000001", "type": "ADDED"}}, false},
		{"a value moved across a field boundary", redis.XMessage{ID: "2-0", Values: map[string]any{"at": "1700000000000001", "type": "ADDEDd", "digest": ""}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.m) == Fingerprint(base); got != tt.same || sameEntry(tt.m, base) != tt.same {
				t.Errorf("same fingerprint %v, sameEntry %v; want %v", got, sameEntry(tt.m, base), tt.same)
			}
		})
	}
	if f := Fingerprint(base); len(f) != 32 {
		t.Errorf("Fingerprint = %q, want 32 hex digits", f)
	}
}
