package app

import (
	"strings"
	"testing"
)

// required are the flags ParseFlags insists on; the files are not read by it.
var required = []string{"--tls-cert-file", "c.pem", "--tls-private-key-file", "k.pem", "--requestheader-client-ca-file", "ca.pem"}

func TestBcryptCostFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"default", nil, 12, ""},
		{"set", []string{"--bcrypt-cost", "11"}, 11, ""},
		{"too low", []string{"--bcrypt-cost", "3"}, 0, "--bcrypt-cost 3: want 4 to 31"},
		{"too high", []string{"--bcrypt-cost", "32"}, 0, "--bcrypt-cost 32: want 4 to 31"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseFlags(append(append([]string{}, required...), tc.args...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The store hashes, and makes the dummy hash for unknown users, at that cost.
			if got := newUsers(nil, c).Cost(); got != tc.want {
				t.Errorf("user store cost %d, want %d", got, tc.want)
			}
		})
	}
}
