package pki

import "path/filepath"

// ControlPlane is the PKI of the gRPC links between Envoy and the control plane: its own CA
// (apart from the edge's and the upstreams', so that no other certificate opens those ports),
// one serving certificate that xds and extauthz share, and Envoy's client certificate.
type ControlPlane struct {
	CA *CA
	// The files, under the directory WriteControlPlane was given.
	CAFile                        string // control-plane-ca.crt: --grpc-client-ca-file, and Envoy's CA for both
	ServerCertFile, ServerKeyFile string // control-plane-server.{crt,key}: --grpc-tls-cert-file, --grpc-tls-key-file
	EnvoyCertFile, EnvoyKeyFile   string // control-plane-envoy.{crt,key}: Envoy's client certificate
}

// WriteControlPlane issues the control plane's certificates, the server's for hosts (DNS names
// or IPs, as Envoy will verify them), and writes them into dir.
func WriteControlPlane(dir string, hosts ...string) (*ControlPlane, error) {
	ca, err := NewCA("keygate control-plane CA")
	if err != nil {
		return nil, err
	}
	server, err := ca.Server("keygate control plane", hosts...)
	if err != nil {
		return nil, err
	}
	client, err := ca.Client("keygate-envoy")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{CA: ca, CAFile: filepath.Join(dir, "control-plane-ca.crt")}
	if err := (Pair{CertPEM: ca.CertPEM}).writeCert(cp.CAFile); err != nil {
		return nil, err
	}
	if cp.ServerCertFile, cp.ServerKeyFile, err = server.Write(dir, "control-plane-server"); err != nil {
		return nil, err
	}
	if cp.EnvoyCertFile, cp.EnvoyKeyFile, err = client.Write(dir, "control-plane-envoy"); err != nil {
		return nil, err
	}
	return cp, nil
}
