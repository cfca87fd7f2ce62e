package config

import (
	"strings"
	"testing"
)

const goodHash = "$2a$04$zyqLdR28qpm3BzDz.4XtVeqU9.7MJRbQ6UtSn8wfj0wv7aqq5l9la"

// clientFiles are configuration files and what validation says of them.
var clientFiles = []struct {
	name string
	yaml string
	want []string // substrings of the error; none: valid
}{
	{"public client with a loopback redirect", `
oidc:
  clients:
  - {name: CLI, clientId: cli, redirectURIs: ["http://127.0.0.1/callback", "http://[::1]:8000/cb", "http://localhost/cb"]}`, nil},
	{"confidential client", `
oidc:
  clients:
  - {name: Argo CD, clientId: argocd, clientSecretHash: "` + goodHash + `", redirectURIs: [https://argocd.example.com/auth/callback]}`, nil},
	{"everything missing", `
oidc:
  clients:
  - {}`, []string{"oidc.clients[0]: clientId is required", "name is required", "redirectURIs needs at least one URI"}},
	{"duplicate clientId", `
oidc:
  clients:
  - {name: A, clientId: same, redirectURIs: [https://a.example.com/cb]}
  - {name: B, clientId: same, redirectURIs: [https://b.example.com/cb]}`, []string{`oidc.clients[1] (clientId "same"): clientId is also used by oidc.clients[0]`}},
	{"the CLI's built-in clientId", `
oidc:
  clients:
  - {name: A, clientId: keygate-cli, redirectURIs: [http://127.0.0.1/callback]}`, []string{`clientId "keygate-cli" is reserved for the keygate CLI`}},
	{"http on a public host", `
oidc:
  clients:
  - {name: A, clientId: a, redirectURIs: [http://app.example.com/cb]}`, []string{`redirectURIs[0] "http://app.example.com/cb": http is allowed only for loopback hosts`}},
	{"relative, fragment, custom scheme", `
oidc:
  clients:
  - {name: A, clientId: a, redirectURIs: [/cb, "https://a.example.com/cb#x", "myapp://cb"], postLogoutRedirectURIs: [http://evil.example.com/]}`,
		[]string{"redirectURIs[0]", "must be an absolute URI", "must not have a fragment", "the scheme must be https", "postLogoutRedirectURIs[0]"}},
	{"secret hash not bcrypt", `
oidc:
  clients:
  - {name: A, clientId: a, clientSecretHash: plain-secret, redirectURIs: [https://a.example.com/cb]}`, []string{`oidc.clients[0] (clientId "a"): clientSecretHash is not a bcrypt hash (make one with: keystore hash-secret`}},
	{"colon in clientId", `
oidc:
  clients:
  - {name: A, clientId: "a:b", redirectURIs: [https://a.example.com/cb]}`, []string{"must not contain spaces, control characters or ':'"}},
}

func TestOIDCClientsValidate(t *testing.T) {
	for _, tc := range clientFiles {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "plain-secret") {
				t.Errorf("error repeats the clientSecretHash value: %v", err)
			}
		})
	}
}
