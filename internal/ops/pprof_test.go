package ops

import (
	"strings"
	"testing"
)

// Profiles are never served beyond loopback, whichever component serves them.
func TestPprofAddress(t *testing.T) {
	for name, tc := range map[string]struct{ in, want, wantErr string }{
		"a port alone is 127.0.0.1's": {in: ":6060", want: "127.0.0.1:6060"},
		"IPv4 loopback":               {in: "127.0.0.1:6060", want: "127.0.0.1:6060"},
		"IPv6 loopback":               {in: "[::1]:6060", want: "[::1]:6060"},
		"localhost":                   {in: "localhost:6060", want: "localhost:6060"},
		"every interface":             {in: "0.0.0.0:6060", wantErr: `"0.0.0.0:6060": profiles are served on a loopback address only`},
		"every IPv6 interface":        {in: "[::]:6060", wantErr: "loopback address only"},
		"a pod's address":             {in: "10.1.2.3:6060", wantErr: "loopback address only"},
		"a name":                      {in: "keygate.example.com:6060", wantErr: "loopback address only"},
		"no port":                     {in: "localhost", wantErr: `"localhost" is not host:port`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := PprofAddress(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("PprofAddress(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PprofAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
