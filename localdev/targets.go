package localdev

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/xds/source/file"
)

// Targets is the targets file that xds reads (schema: xds/README.md).
type Targets = file.Document

// upstream returns the upstream of an API server as the edge reaches it: the platform CA and
// the edge's own client certificate.
func (p *Platform) upstream(a *kubeserver.APIServer) file.Upstream {
	return file.Upstream{URL: a.URL, CAFile: "pki/platform-ca.crt", ClientCertFile: "pki/edge-client.crt", ClientKeyFile: "pki/edge-client.key"}
}

// ClusterTarget describes API server a to the edge as a connected cluster named name.
func (p *Platform) ClusterTarget(name string, a *kubeserver.APIServer) file.Cluster {
	return file.Cluster{Name: name, Upstream: p.upstream(a)}
}

func (p *Platform) writeInitialTargets(certs *kubeserver.Certs) error {
	edge, err := certs.CA.Client(kubeserver.EdgeUser)
	if err != nil {
		return err
	}
	if _, _, err := edge.Write(p.path("pki"), "edge-client"); err != nil {
		return err
	}
	demo := p.ClusterTarget(ClusterDemo, p.Clusters[ClusterDemo])
	demo.Grafana = &file.Upstream{URL: p.GrafanaURL}
	demo.Spaces = []file.Space{{Name: SpaceName, Project: Project}}
	p.targets = Targets{
		Clusters: []file.Cluster{demo, p.ClusterTarget(ClusterStaging, p.Clusters[ClusterStaging])},
		VirtualClusters: []file.VirtualCluster{{
			Name: VirtualClusterName, Namespace: VirtualClusterNamespace, Cluster: VirtualClusterHost, Project: Project,
			Upstream: p.upstream(p.VirtualCluster),
		}},
	}
	// The management API and the login endpoints are keystore's; the edge reaches both with its
	// client certificate, which keystore requires before it believes identity headers (the API)
	// or X-Forwarded-For (the login endpoints' per-address limits).
	p.targets.Management = &file.Upstream{URL: "https://" + p.keystoreAddrs.api, CAFile: "pki/platform-ca.crt", ClientCertFile: "pki/edge-client.crt", ClientKeyFile: "pki/edge-client.key"}
	p.targets.Auth = &file.Upstream{URL: "https://" + p.keystoreAddrs.auth, CAFile: "pki/platform-ca.crt", ClientCertFile: "pki/edge-client.crt", ClientKeyFile: "pki/edge-client.key"}
	p.targets.OIDC = &file.Upstream{URL: "https://" + p.keystoreAddrs.oidc, CAFile: "pki/platform-ca.crt"}
	p.TargetsFile = p.path("targets.yaml")
	return p.writeTargets()
}

// EditTargets changes the targets file the way an operator would: edit writes a new version
// of the file, atomically (write and rename), and xds picks it up.
func (p *Platform) EditTargets(edit func(*Targets)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	edit(&p.targets)
	return p.writeTargets()
}

// WriteTargetsFileRaw replaces the targets file with data as it is, e.g. a broken file.
func (p *Platform) WriteTargetsFileRaw(data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return atomicWrite(p.TargetsFile, data)
}

// RestoreTargets writes the current targets again (after WriteTargetsFileRaw).
func (p *Platform) RestoreTargets() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writeTargets()
}

func (p *Platform) writeTargets() error {
	data, err := yaml.Marshal(p.targets)
	if err != nil {
		return err
	}
	header := []byte("# Targets of the local platform, written by `make run` (localdev). Schema: xds/README.md.\n")
	return atomicWrite(p.TargetsFile, append(header, data...))
}

func atomicWrite(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".targets-*.yaml")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// Refs are the demo targets that need an access key.
func (p *Platform) Refs() []edgepath.Ref {
	return []edgepath.Ref{
		{Kind: edgepath.KindCluster, Cluster: ClusterDemo, Spaces: edgepath.FormatSpaces(map[string]string{SpaceName: Project})},
		{Kind: edgepath.KindCluster, Cluster: ClusterStaging},
		{Kind: edgepath.KindVirtualCluster, Cluster: VirtualClusterHost, Namespace: VirtualClusterNamespace, VirtualCluster: VirtualClusterName, Project: Project},
		{Kind: edgepath.KindGrafana, Cluster: ClusterDemo},
		{Kind: edgepath.KindManagement},
	}
}
