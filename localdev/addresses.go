package localdev

// KeystoreAPIAddress is where keystore serves the management API (host:port), behind the edge.
// Tests reach it directly, as anyone on the pod network could, to show it trusts only the
// edge's client certificate.
func (p *Platform) KeystoreAPIAddress() string { return p.keystoreAddrs.api }

// PKIDir is the folder of the platform's certificates (pki/), for tests that need the
// edge's own client certificate next to a stranger's.
func (p *Platform) PKIDir() string { return p.path("pki") }
