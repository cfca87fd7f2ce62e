package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// OIDC configures keystore's OpenID provider (/oidc/ on the edge).
type OIDC struct {
	// Clients are the relying parties that may sign users in.
	Clients []Client `json:"clients,omitempty"`
}

// Client is one relying party, as Loft's oidc.clients has it, but with the secret stored as
// a bcrypt hash: the file (often a Secret, often in Git) then never holds a usable secret.
type Client struct {
	// Name is shown on the login page ("Sign in to Argo CD").
	Name string `json:"name"`
	// ClientID is the OAuth client_id.
	ClientID string `json:"clientId"`
	// ClientSecretHash is the bcrypt hash of the client secret (keystore hash-secret). Empty: a
	// public client (a CLI, a single-page app), which must use PKCE.
	ClientSecretHash string `json:"clientSecretHash,omitempty"`
	// RedirectURIs are the exact redirect_uri values the client may use.
	RedirectURIs []string `json:"redirectURIs"`
	// PostLogoutRedirectURIs are the exact post_logout_redirect_uri values the client may use.
	PostLogoutRedirectURIs []string `json:"postLogoutRedirectURIs,omitempty"`
}

// CLIClientID is the OIDC provider's built-in public client of the keygate CLI (keygate login
// --sso); no configured client may take its ID.
const CLIClientID = "keygate-cli"

// Public says whether the client has no secret (and so must use PKCE).
func (c *Client) Public() bool { return c.ClientSecretHash == "" }

// Client returns the client with clientID, or nil.
func (o *OIDC) Client(clientID string) *Client {
	for i := range o.Clients {
		if o.Clients[i].ClientID == clientID {
			return &o.Clients[i]
		}
	}
	return nil
}

func (o *OIDC) validate() []string {
	var errs []string
	seen := map[string]int{}
	for i := range o.Clients {
		c := &o.Clients[i]
		where := fmt.Sprintf("oidc.clients[%d]", i)
		if c.ClientID != "" {
			where = fmt.Sprintf("oidc.clients[%d] (clientId %q)", i, c.ClientID)
		}
		bad := func(format string, args ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, args...)) }
		switch {
		case c.ClientID == "":
			bad("clientId is required")
		case strings.ContainsFunc(c.ClientID, func(r rune) bool { return r <= ' ' || r == 0x7f || r == ':' }):
			// A colon would break HTTP Basic authentication of the client (RFC 6749 §2.3.1).
			bad("clientId must not contain spaces, control characters or ':'")
		}
		if c.ClientID == CLIClientID {
			bad("clientId %q is reserved for the keygate CLI, which the provider has built in", CLIClientID)
		}
		if j, dup := seen[c.ClientID]; dup && c.ClientID != "" {
			bad("clientId is also used by oidc.clients[%d]; every client needs its own", j)
		}
		seen[c.ClientID] = i
		if strings.TrimSpace(c.Name) == "" {
			bad("name is required (the login page shows it)")
		}
		if c.ClientSecretHash != "" {
			if _, err := bcrypt.Cost([]byte(c.ClientSecretHash)); err != nil {
				// The hash is not a secret, but say only what is wrong with it.
				bad("clientSecretHash is not a bcrypt hash (make one with: keystore hash-secret < secret-file)")
			}
		}
		if len(c.RedirectURIs) == 0 {
			bad("redirectURIs needs at least one URI")
		}
		for j, u := range c.RedirectURIs {
			if msg := checkRedirectURI(u); msg != "" {
				bad("redirectURIs[%d] %q: %s", j, u, msg)
			}
		}
		for j, u := range c.PostLogoutRedirectURIs {
			if msg := checkRedirectURI(u); msg != "" {
				bad("postLogoutRedirectURIs[%d] %q: %s", j, u, msg)
			}
		}
	}
	return errs
}

// checkRedirectURI says what is wrong with a redirect URI, "" when nothing: an absolute https
// URI without a fragment (RFC 6749 §3.1.2), or http on a loopback address, which a native
// application listens on (RFC 8252 §7.3, §8.3).
func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a URI"
	case !u.IsAbs() || u.Host == "":
		return "must be an absolute URI with a host"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment"
	case u.User != nil:
		return "must not carry user information"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && loopback(u.Hostname()):
		return ""
	case u.Scheme == "http":
		return "http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https"
	}
	return "the scheme must be https (or http on a loopback host)"
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
