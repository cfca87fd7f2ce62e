package config

// Auth configures the login endpoints (/auth/ on the edge).
type Auth struct {
	// Connectors are the external identity providers users may log in with.
	Connectors []Connector `json:"connectors,omitempty"`
}

// Connector is one external identity provider.
type Connector struct {
	// ID names the connector in paths (/auth/<id>/login) and in spec.identity.connector.
	ID string `json:"id"`
	// DisplayName is shown on the login page ("Log in with Okta").
	DisplayName string `json:"displayName,omitempty"`
	// OIDC configures an OpenID Connect provider.
	OIDC *OIDCConnector `json:"oidc,omitempty"`
}

// OIDCConnector is an OpenID Connect identity provider.
type OIDCConnector struct {
	IssuerURL string `json:"issuerURL"`
	ClientID  string `json:"clientId"`
	// ClientSecretFile holds the client secret (a mounted Secret); secrets are never in this
	// file.
	ClientSecretFile string `json:"clientSecretFile,omitempty"`
}

func (a *Auth) validate() []string {
	// Filled in with the connectors (issue 14).
	return nil
}
