package localdev

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/keygate-dev/keygate/internal/testidp"
)

// The test IdP (internal/testidp: zitadel/oidc's example provider as its own process), offered
// to keystore as single sign-on connector SSOConnector when Options.SSO is set.
const (
	SSOConnector = "testidp"
	// SSOUsernamePrefix is put before the IdP's user names at the edge: alice is testidp:alice.
	SSOUsernamePrefix = SSOConnector + ":"
	// SSOPassword is the password of every SSOUsers at the IdP.
	SSOPassword = "idp-password"
)

// SSOUsers are the IdP's users; SSOSubject names one at the IdP (to change its groups).
var SSOUsers = []string{"alice", "bob", "carol", "dave", "erin"}

// SSOSubject is the IdP's subject of user name.
func SSOSubject(name string) string { return "sub-" + name }

// startIdP starts the test IdP, with the edge's callback as its client's redirect URI, and
// returns the connector for keystore's configuration file.
func (p *Platform) startIdP(ctx context.Context) (string, error) {
	p.step("starting the test identity provider (single sign-on connector %s)", SSOConnector)
	dir := p.path("testidp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var people []testidp.User
	for _, n := range SSOUsers {
		people = append(people, testidp.User{ID: SSOSubject(n), Username: n, Password: SSOPassword, Email: n + "@idp.example", EmailVerified: true})
	}
	callback := fmt.Sprintf("%s/auth/%s/callback", p.EdgeURL, SSOConnector)
	idp, err := testidp.Launch(ctx, testidp.Options{ClientID: "keygate", RedirectURIs: []string{callback}, Users: people, Dir: dir})
	if err != nil {
		return "", err
	}
	p.IdP = idp
	secretFile := p.path("testidp", "client-secret")
	if err := os.WriteFile(secretFile, []byte(idp.ClientSecret+"\n"), 0o600); err != nil {
		return "", err
	}
	// refreshInterval is the shortest keystore allows; keystore's --sso-refresh-period (see
	// Options.KeystoreArgs) bounds how late past it the refresh comes.
	return strings.Join([]string{"auth:", "  connectors:", "  - id: " + SSOConnector, "    displayName: Test IdP", "    oidc:",
		"      issuerURL: " + idp.Issuer, "      clientId: keygate", "      clientSecretFile: " + secretFile,
		"      caFile: " + idp.CAFile, `      usernamePrefix: "` + SSOUsernamePrefix + `"`, "      refreshInterval: 30s", ""}, "\n"), nil
}
