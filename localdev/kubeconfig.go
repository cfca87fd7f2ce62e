package localdev

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// ContextName is the kubeconfig context name Loft uses for a target.
func ContextName(r edgepath.Ref) string {
	switch r.Kind {
	case edgepath.KindManagement:
		return "loft-management"
	case edgepath.KindCluster:
		return "loft_" + r.Cluster
	case edgepath.KindVirtualCluster:
		return "loft-vcluster_" + r.VirtualCluster + "_" + r.Namespace + "_" + r.Cluster
	}
	return ""
}

// Kubeconfig returns a kubeconfig with one context per Kubernetes target of the edge, each
// using key as its token and trusting the edge's CA. The first context is current.
func (p *Platform) Kubeconfig(key string, refs ...edgepath.Ref) ([]byte, error) {
	return p.KubeconfigAt(p.EdgeURL, key, refs...)
}

// KubeconfigAt is Kubeconfig for the edge at edgeURL (another Envoy serving the edge's
// certificate, e.g. StartStaticEdge's).
func (p *Platform) KubeconfigAt(edgeURL, key string, refs ...edgepath.Ref) ([]byte, error) {
	if len(refs) == 0 {
		refs = p.Refs()
	}
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos["loft"] = &clientcmdapi.AuthInfo{Token: key}
	for _, r := range refs {
		name := ContextName(r)
		if name == "" {
			continue
		}
		cfg.Clusters[name] = &clientcmdapi.Cluster{
			Server:                   edgeURL + strings.TrimSuffix(r.Prefix(), "/"),
			CertificateAuthorityData: p.EdgeCA,
		}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: "loft"}
		if cfg.CurrentContext == "" {
			cfg.CurrentContext = name
		}
	}
	return clientcmd.Write(*cfg)
}

// WriteKubeconfig writes Kubeconfig(key) to path, atomically, readable by the owner only (it
// holds the key).
func (p *Platform) WriteKubeconfig(path, key string) error {
	data, err := p.Kubeconfig(key)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// HTTPClient is an HTTP client that trusts the edge's CA (and nothing else).
func (p *Platform) HTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.EdgeCA) {
		return nil, errors.New("edge CA is not valid PEM")
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}, nil
}
