package localdev

import (
	"context"
	"errors"
	"fmt"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if err := p.startKubelet(certs); err != nil {
		return err
	}
	if err := p.registerKubelet(ctx); err != nil {
		return err
	}
	// The virtual cluster runs in this namespace of its host cluster, as vcluster does.
	if err := p.Clusters[ClusterDemo].CreateNamespace(ctx, VirtualClusterNamespace); err != nil {
		return err
	}
	return p.Clusters[ClusterDemo].CreateNamespace(ctx, SpaceName)
}

// GrantView lets group read every connected and virtual cluster, namespaces included, for users
// of the local platform who are not its admin. The role is system:aggregate-to-view, the rules
// Kubernetes' view ClusterRole gathers: view itself is empty until the controller manager's
// aggregation fills it, and the local platform runs none.
func (p *Platform) GrantView(ctx context.Context, group string) error {
	for _, a := range append([]*kubeserver.APIServer{p.VirtualCluster}, p.Clusters[ClusterDemo], p.Clusters[ClusterStaging]) {
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "keygate-view-" + group},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:aggregate-to-view"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
		}
		if _, err := a.Admin.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: bind %s to view: %w", a.Name, group, err)
		}
	}
	return nil
}
