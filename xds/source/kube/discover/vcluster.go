package discover

import (
	"fmt"
	"net"
	"strconv"
	"strings"

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

// vclusterProject is the project of a virtual cluster: the label loft.sh/project of its Service,
// else of its namespace (Loft labels project namespaces so), else none.
func vclusterProject(svc *corev1.Service, nsLabels map[string]string) string {
	if p := svc.Labels[v1alpha1.LabelProject]; p != "" {
		return p
	}
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
		Project:        vclusterProject(svc, nsLabels),
	}
	return credential.Build(ref, func() (model.Upstream, string, error) { return vclusterUpstream(svc, secret) })
}

// vclusterUpstream reads the credential from the vc-<name> Secret and finds an address of the
// virtual cluster that the edge, outside the connected cluster, can reach. where names the
// Secret, for errors.
func vclusterUpstream(svc *corev1.Service, secret *corev1.Secret) (u model.Upstream, where string, err error) {
	secretName := svc.Namespace + "/" + vclusterSecretName(svc.Name)
	if secret == nil {
		return model.Upstream{}, "", fmt.Errorf("Secret %s not found (vcluster writes the virtual cluster's kubeconfig there)", secretName)
	}
	where = "Secret " + secretName
	var server string
	if data, ok := secret.Data[keyVClusterConfig]; ok {
		if u, server, err = credential.FromKubeconfig(data); err != nil {
			return model.Upstream{}, "", fmt.Errorf("%s: key %q: %w", where, keyVClusterConfig, err)
		}
	} else {
		u = model.Upstream{CA: secret.Data[keyVClusterCA], ClientCert: secret.Data[keyVClusterCert], ClientKey: secret.Data[keyVClusterKey]}
	}
	if u.Token == "" && len(u.ClientCert) == 0 {
		return model.Upstream{}, "", fmt.Errorf("%s: holds no credential: want key %q (a kubeconfig with a token or client certificate), or %q and %q (it has %s)",
			where, keyVClusterConfig, keyVClusterCert, keyVClusterKey, credential.Keys(secret))
	}

	raw, from := vclusterServer(svc, server)
	if raw == "" {
		local := ""
		if server != "" {
			local = fmt.Sprintf(", and the kubeconfig's server %s is local to the connected cluster", server)
		}
		return model.Upstream{}, "", fmt.Errorf("not reachable from the edge: Service %s/%s has no LoadBalancer address%s; expose it (LoadBalancer, or vcluster's exportKubeConfig.server) or annotate the Service with %s",
			svc.Namespace, svc.Name, local, v1alpha1.AnnotationServer)
	}
	// https only: the edge's credential must not travel in clear.
	if u.URL, err = model.ParseURL(raw, "https"); err != nil {
		return model.Upstream{}, "", fmt.Errorf("%s: %w", from, err)
	}
	// vcluster's serving certificate always carries the Service's in-cluster names, while an
	// address it is exposed at (a load balancer's IP, an operator's DNS name) often is not in it.
	switch {
	case svc.Annotations[v1alpha1.AnnotationTLSServerName] != "":
		u.ServerName = svc.Annotations[v1alpha1.AnnotationTLSServerName]
	case u.ServerName == "":
		u.ServerName = svc.Name + "." + svc.Namespace + ".svc"
	}
	return u, where, nil
}

// vclusterServer picks the virtual cluster's URL, first that applies: the Service's annotation,
// its LoadBalancer ingress, the kubeconfig's server unless it is local. A ClusterIP is never
// used: the edge runs outside the connected cluster. from says where the URL came from, for
// errors.
func vclusterServer(svc *corev1.Service, kubeconfigServer string) (raw, from string) {
	if a := svc.Annotations[v1alpha1.AnnotationServer]; a != "" {
		return a, "annotation " + v1alpha1.AnnotationServer
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			host := ing.IP
			if host == "" {
				host = ing.Hostname
			}
			if host != "" {
				return "https://" + net.JoinHostPort(host, strconv.Itoa(int(httpsPort(svc)))), "the Service's LoadBalancer ingress"
			}
		}
	}
	if kubeconfigServer != "" && !isLocal(kubeconfigServer) {
		return kubeconfigServer, "the kubeconfig's server"
	}
	return "", ""
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

// isLocal reports whether a kubeconfig's server is a loopback address: vcluster writes
// https://localhost:8443 for `vcluster connect`'s port-forward unless told another server.
func isLocal(server string) bool {
	host := server
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
