package discover

import (
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
)

// What vcluster leaves in the host cluster (its Helm chart, 0.2x; virtualclusters in
// xds/README.md): a Service <name> labelled app=vcluster and release=<name>, and a Secret
// vc-<name> with the virtual cluster's admin kubeconfig.
const (
	// vclusterSelector selects the vcluster Services of a connected cluster.
	vclusterSelector = "app=vcluster"
	// labelRelease is the Helm release of a vcluster Service; the chart's headless Service
	// carries the same app label but is named <release>-headless.
	labelRelease = "release"
	// vclusterSecretPrefix + the vcluster's name is its kubeconfig Secret.
	vclusterSecretPrefix = "vc-"
	// Keys of that Secret: the kubeconfig, and the same PEM items one by one.
	keyVClusterConfig = "config"
	keyVClusterCA     = "certificate-authority"
	keyVClusterCert   = "client-certificate"
	keyVClusterKey    = "client-key"
)

// isVClusterService reports whether svc is a vcluster's own Service, the one a target is made
// of: not the chart's headless Service (same app label), nor a Service of another release.
func isVClusterService(svc *corev1.Service) bool {
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return false
	}
	if r, ok := svc.Labels[labelRelease]; ok && r != svc.Name {
		return false
	}
	return true
}

// vclusterSecretName is the name of the kubeconfig Secret of the vcluster Service svcName.
func vclusterSecretName(svcName string) string { return vclusterSecretPrefix + svcName }

// vclusterProject is the project of a virtual cluster: the label loft.sh/project of its
// namespace (Loft labels project namespaces so), else none. Never the Service's label: a
// namespace's tenants write their Services, and a project label there would put their virtual
// cluster in any project, within reach of that project's keys; only cluster admins label
// namespaces.
func vclusterProject(nsLabels map[string]string) string {
	return nsLabels[v1alpha1.LabelProject]
}

// virtualClusterTarget translates a vcluster Service of the connected cluster cluster, its
// kubeconfig Secret (nil if there is none) and its namespace's labels into a virtualcluster
// target. It reads nothing else, so it is tested as a table.
func virtualClusterTarget(cluster string, svc *corev1.Service, secret *corev1.Secret, nsLabels map[string]string) credential.Result {
	ref := edgepath.Ref{
		Kind:           edgepath.KindVirtualCluster,
		Cluster:        cluster,
		Namespace:      svc.Namespace,
		VirtualCluster: svc.Name,
		Project:        vclusterProject(nsLabels),
	}
	return credential.Build(ref, func() (model.Upstream, string, error) { return vclusterUpstream(svc, secret) })
}

// vclusterUpstream reads the credential from the vc-<name> Secret and the virtual cluster's
// address from its Service's LoadBalancer status. where names the Secret, for errors.
//
// The Secret and the Service are the tenant's to write, the Service's status is not (the
// load-balancer controller writes it): the CA and the credential may come from the tenant, who
// can only break their own virtual cluster with them, but the address must not, or the edge
// would forward to any HTTPS host the tenant names and holds a CA for (xds/README.md, "Trust").
func vclusterUpstream(svc *corev1.Service, secret *corev1.Secret) (u model.Upstream, where string, err error) {
	if a, ok := svc.Annotations[v1alpha1.AnnotationServer]; ok {
		return model.Upstream{}, "", fmt.Errorf("annotation %s=%q is not read: the namespace's tenants can write it; remove it, and declare a VirtualCluster (with spec.server) to serve the virtual cluster at another address",
			v1alpha1.AnnotationServer, a)
	}
	secretName := svc.Namespace + "/" + vclusterSecretName(svc.Name)
	if secret == nil {
		return model.Upstream{}, "", fmt.Errorf("Secret %s not found (vcluster writes the virtual cluster's kubeconfig there)", secretName)
	}
	where = "Secret " + secretName
	if data, ok := secret.Data[keyVClusterConfig]; ok {
		// The kubeconfig's server is ignored: the tenant wrote it (exportKubeConfig.server).
		if u, _, err = credential.FromKubeconfig(data); err != nil {
			return model.Upstream{}, "", fmt.Errorf("%s: key %q: %w", where, keyVClusterConfig, err)
		}
	} else {
		u = model.Upstream{CA: secret.Data[keyVClusterCA], ClientCert: secret.Data[keyVClusterCert], ClientKey: secret.Data[keyVClusterKey]}
	}
	if u.Token == "" && len(u.ClientCert) == 0 {
		return model.Upstream{}, "", fmt.Errorf("%s: holds no credential: want key %q (a kubeconfig with a token or client certificate), or %q and %q (it has %s)",
			where, keyVClusterConfig, keyVClusterCert, keyVClusterKey, credential.Keys(secret))
	}
	raw := loadBalancerServer(svc)
	if raw == "" {
		return model.Upstream{}, "", fmt.Errorf("not reachable from the edge: Service %s/%s has no LoadBalancer address; make it a LoadBalancer Service, or declare a VirtualCluster with its server (discovery takes no address the namespace's tenants write: not the kubeconfig's server, not an annotation)",
			svc.Namespace, svc.Name)
	}
	if u.URL, err = model.ParseURL(raw, "https"); err != nil {
		return model.Upstream{}, "", fmt.Errorf("the Service's LoadBalancer ingress: %w", err)
	}
	// vcluster's serving certificate always carries the Service's in-cluster names, while the
	// load balancer's address often is not in it.
	switch {
	case svc.Annotations[v1alpha1.AnnotationTLSServerName] != "":
		u.ServerName = svc.Annotations[v1alpha1.AnnotationTLSServerName]
	case u.ServerName == "":
		u.ServerName = svc.Name + "." + svc.Namespace + ".svc"
	}
	return u, where, nil
}

// loadBalancerServer is the URL of the Service's first LoadBalancer ingress (IP or hostname,
// with the Service's https port), or "". A ClusterIP is never used: the edge runs outside the
// connected cluster.
func loadBalancerServer(svc *corev1.Service) string {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return ""
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		host := ing.IP
		if host == "" {
			host = ing.Hostname
		}
		if host != "" {
			return "https://" + net.JoinHostPort(host, strconv.Itoa(int(httpsPort(svc))))
		}
	}
	return ""
}

// httpsPort is the Service's port named https, else its only port, else 443 (the chart's).
func httpsPort(svc *corev1.Service) int32 {
	for _, p := range svc.Spec.Ports {
		if p.Name == "https" {
			return p.Port
		}
	}
	if len(svc.Spec.Ports) == 1 {
		return svc.Spec.Ports[0].Port
	}
	return 443
}
