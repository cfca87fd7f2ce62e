package localdev

// KeystoreAPIAddress is where keystore serves the management API (host:port), behind the edge.
// Tests reach it directly, as anyone on the pod network could, to show it trusts only the
// edge's client certificate.
func (p *Platform) KeystoreAPIAddress() string { return p.keystoreAddrs.api }

// KeystoreAuthAddress is where keystore serves the login endpoints (host:port), the edge's
// /auth/. Tests reach it directly to show it believes X-Forwarded-For only from the edge.
func (p *Platform) KeystoreAuthAddress() string { return p.keystoreAddrs.auth }

// PKIDir is the folder of the platform's certificates (pki/), for tests that need the
// edge's own client certificate next to a stranger's.
func (p *Platform) PKIDir() string { return p.path("pki") }
