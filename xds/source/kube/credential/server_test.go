package credential

import (
	"net/url"
	"strings"
	"testing"
)

// TestCheckServer: the servers a virtual cluster may have, and the ones an attacker who writes
// one would pick to turn the edge against its own host or its cloud.
func TestCheckServer(t *testing.T) {
	for raw, want := range map[string]string{
		"https://vc1.team-a.example.com":     "",
		"https://203.0.113.7:6443":           "",
		"https://10.0.0.5":                   "",
		"https://[2001:db8::5]:443":          "",
		"https://localhost.example.com":      "",
		"https://v1.example.io":              "",
		"http://vc1.team-a.example.com":      "scheme must be https",
		"https://127.0.0.1:6443":             "loopback",
		"https://127.9.9.9":                  "loopback",
		"https://[::1]:443":                  "loopback",
		"https://[::ffff:127.0.0.1]":         "loopback",
		"https://localhost:8443":             "loopback",
		"https://LOCALHOST.":                 "loopback",
		"https://x.localhost":                "loopback",
		"https://0.0.0.0":                    "unspecified",
		"https://0.1.2.3":                    "unspecified",
		"https://[::]":                       "unspecified",
		"https://169.254.169.254":            "link-local",
		"https://169.254.10.1:10250":         "link-local",
		"https://[fe80::1]":                  "link-local",
		"https://[fe80::1%25eth0]":           "IPv6 zone",
		"https://[64:ff9b::a9fe:a9fe]":       "link-local",
		"https://[fd00:ec2::254]":            "metadata",
		"https://100.100.100.200":            "metadata",
		"https://metadata.google.internal":   "metadata",
		"https://Metadata.Google.Internal.":  "metadata",
		"https://metadata":                   "metadata",
		"https://instance-data.ec2.internal": "metadata",
		"https://224.0.0.1":                  "multicast",
		"https://2130706433":                 "not a DNS name",
		"https://127.1":                      "not a DNS name",
		"https://0x7f.1":                     "not a DNS name",
		"https://0x7f000001":                 "not a DNS name",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		err = CheckServer(u)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckServer(%s) = %v, want nil", raw, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckServer(%s) = %v, want an error containing %q", raw, err, want)
		}
	}
}
