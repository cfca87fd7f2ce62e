package config

import (
	"strings"
	"testing"
)

func TestConnectorValidation(t *testing.T) {
	good := `  - id: okta
    oidc: {issuerURL: "https://example.okta.com", clientId: c, clientSecretFile: /s}
`
	for _, tc := range []struct {
		name, yaml, want string // want "" means valid
	}{
		{"minimal", good, ""},
		{"reserved id", strings.Replace(good, "okta", "password", 1), `auth.connectors[0] (password): id: "password" is reserved`},
		{"bad id", strings.Replace(good, "okta", "Okta_1", 1), "must be a DNS-1123 label"},
		{"duplicate id", good + good, `auth.connectors[1] (okta): id: "okta" is also the id of auth.connectors[0]`},
		{"http issuer", strings.Replace(good, "https://", "http://", 1), "issuerURL"},
		{"no secret file", strings.Replace(good, ", clientSecretFile: /s", "", 1), "clientSecretFile: required"},
		{"no openid", strings.Replace(good, "/s}", "/s, scopes: [email]}", 1), "scopes: must include openid"},
		{"prefix without colon", strings.Replace(good, "/s}", "/s, usernamePrefix: okta}", 1), "usernamePrefix"},
		{"reserved prefix", strings.Replace(good, "/s}", "/s, usernamePrefix: 'loft:'}", 1), "reserved for the edge"},
		{"system group grantable", strings.Replace(good, "/s}", "/s, privilegedGroups: ['system:masters']}", 1), "no identity provider may grant system:"},
		{"short interval", strings.Replace(good, "/s}", "/s, refreshInterval: 1s}", 1), "refreshInterval"},
		{"two without prefix", good + strings.Replace(good, "okta", "entra", 1), "each connector needs its own"},
		{"two with prefixes", strings.Replace(good, "/s}", "/s, usernamePrefix: 'okta:'}", 1) + strings.Replace(good, "okta", "entra", 1), ""},
		{"no oidc", "  - id: x\n", "oidc: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("auth:\n  connectors:\n" + tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}
