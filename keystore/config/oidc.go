package config

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

func (o *OIDC) validate() []string {
	// Filled in with the provider (issue 14).
	return nil
}
