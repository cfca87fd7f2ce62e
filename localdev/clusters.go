package localdev

import (
	"context"
	"errors"
	"sync"

	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
)

// platformCerts creates the CA that the demo API servers use for serving and client
// certificates, the admin client certificate, and the service-account key.
func (p *Platform) platformCerts() (*kubeserver.Certs, error) {
	ca, err := pki.NewCA("keygate local platform CA")
	if err != nil {
		return nil, err
	}
	return kubeserver.NewCerts(ca, p.path("pki"), "platform-ca.crt", "keygate-local-admin")
}

func (p *Platform) startKube(ctx context.Context, certs *kubeserver.Certs) error {
	p.step("starting etcd")
	etcd, etcdURL, err := kubeserver.StartEtcd(ctx, p.Dir)
	if err != nil {
		return err
	}
	p.etcd = etcd
	p.step("starting kube-apiservers %s, %s and %s (virtual cluster)", ClusterDemo, ClusterStaging, VirtualClusterName)
	names := []string{ClusterDemo, ClusterStaging, VirtualClusterName}
	servers := make([]*kubeserver.APIServer, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = kubeserver.StartAPIServer(ctx, p.Dir, name, etcdURL, certs)
		}()
	}
	wg.Wait()
	p.Clusters[ClusterDemo], p.Clusters[ClusterStaging], p.VirtualCluster = servers[0], servers[1], servers[2]
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The virtual cluster runs in this namespace of its host cluster, as vcluster does.
	if err := p.Clusters[ClusterDemo].CreateNamespace(ctx, VirtualClusterNamespace); err != nil {
		return err
	}
	return p.Clusters[ClusterDemo].CreateNamespace(ctx, SpaceName)
}
