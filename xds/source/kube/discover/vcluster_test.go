package discover

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/internal/fixture"
)

// want is one expected result: an upstream, or an error containing err.
type want struct {
	ref      edgepath.Ref
	upstream model.Upstream
	err      string
}

// vclusterService is a Service as vcluster's chart writes it: <name> in ns, labels app=vcluster
// and release=<name>, port 443 named https, ClusterIP; edit changes it.
func vclusterService(ns, name string, edit func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "vcluster", "release": name}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.17",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	}
	if edit != nil {
		edit(svc)
	}
	return svc
}

func TestVirtualClusterTargets(t *testing.T) {
	c := fixture.NewCreds(t)
	// vcluster's kubeconfig: the admin's client certificate, server https://localhost:8443 for
	// `vcluster connect`'s port-forward.
	local := fixture.Kubeconfig(t, "https://localhost:8443", func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		cl.CertificateAuthorityData, u.ClientCertificateData, u.ClientKeyData = c.CA, c.Cert, c.Key
	})
	exported := fixture.Kubeconfig(t, "https://vc1.example.com", func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		cl.CertificateAuthorityData, u.ClientCertificateData, u.ClientKeyData = c.CA, c.Cert, c.Key
	})
	vcSecret := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "vc-vc1"}, Data: data}
	}
	full := vcSecret(map[string][]byte{"config": local, "certificate-authority": c.CA, "client-certificate": c.Cert, "client-key": c.Key})
	// exposed is the Service of a vcluster exposed by a load balancer, the only address
	// discovery takes: the controller writes it, not the namespace's tenants.
	exposed := func(svc *corev1.Service) {
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
	}
	annotatedServer := func(server string) func(*corev1.Service) {
		return func(svc *corev1.Service) {
			exposed(svc)
			svc.Annotations = map[string]string{v1alpha1.AnnotationServer: server}
		}
	}
	ref := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "prod", Namespace: "team-a", VirtualCluster: "vc1"}
	withProject := func(p string) edgepath.Ref { r := ref; r.Project = p; return r }
	upstream := func(raw, serverName string) model.Upstream {
		return model.Upstream{URL: fixture.MustURL(t, raw), CA: c.CA, ClientCert: c.Cert, ClientKey: c.Key, ServerName: serverName}
	}
	lbUpstream := upstream("https://203.0.113.7:443", "vc1.team-a.svc")
	const notRead = "annotation targets.keygate.dev/server=%q is not read: the namespace's tenants can write it"

	tests := map[string]struct {
		svc    *corev1.Service
		secret *corev1.Secret
		ns     map[string]string
		want   want
	}{
		"LoadBalancer IP, port of the Service, project of the namespace": {
			svc: vclusterService("team-a", "vc1", exposed), secret: full, ns: map[string]string{v1alpha1.LabelProject: "payments"},
			want: want{ref: withProject("payments"), upstream: lbUpstream},
		},
		"the Service's project label is ignored: the namespace's is the project": {
			svc: vclusterService("team-a", "vc1", func(svc *corev1.Service) {
				exposed(svc)
				svc.Labels[v1alpha1.LabelProject] = "billing"
			}), secret: full, ns: map[string]string{v1alpha1.LabelProject: "payments"},
			want: want{ref: withProject("payments"), upstream: lbUpstream},
		},
		"the Service's project label without the namespace's: no project": {
			svc: vclusterService("team-a", "vc1", func(svc *corev1.Service) {
				exposed(svc)
				svc.Labels[v1alpha1.LabelProject] = "billing"
			}), secret: full,
			want: want{ref: ref, upstream: lbUpstream},
		},
		"annotated server name": {
			svc: vclusterService("team-a", "vc1", func(svc *corev1.Service) {
				exposed(svc)
				svc.Annotations = map[string]string{v1alpha1.AnnotationTLSServerName: "vc1.team-a.example.com"}
			}), secret: full,
			want: want{ref: ref, upstream: upstream("https://203.0.113.7:443", "vc1.team-a.example.com")},
		},
		"LoadBalancer hostname": {
			svc: vclusterService("team-a", "vc1", func(svc *corev1.Service) {
				svc.Spec.Type = corev1.ServiceTypeLoadBalancer
				svc.Spec.Ports = []corev1.ServicePort{{Name: "kube", Port: 8443}}
				svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "abc.elb.example.com"}}
			}), secret: full,
			want: want{ref: ref, upstream: upstream("https://abc.elb.example.com:8443", "vc1.team-a.svc")},
		},
		"PEM items without a kubeconfig": {
			svc:    vclusterService("team-a", "vc1", exposed),
			secret: vcSecret(map[string][]byte{"certificate-authority": c.CA, "client-certificate": c.Cert, "client-key": c.Key}),
			want:   want{ref: ref, upstream: lbUpstream},
		},
		"the kubeconfig's server is ignored: the tenant wrote it": {
			svc: vclusterService("team-a", "vc1", exposed), secret: vcSecret(map[string][]byte{"config": exported}),
			want: want{ref: ref, upstream: lbUpstream},
		},
		"an exported kubeconfig server alone does not make it reachable": {
			svc: vclusterService("team-a", "vc1", nil), secret: vcSecret(map[string][]byte{"config": exported}),
			want: want{ref: ref, err: "not reachable from the edge: Service team-a/vc1 has no LoadBalancer address; make it a LoadBalancer Service, or declare a VirtualCluster with its server"},
		},
		"not exposed": {
			svc: vclusterService("team-a", "vc1", nil), secret: full,
			want: want{ref: ref, err: "not reachable from the edge"},
		},
		"LoadBalancer still pending": {
			svc: vclusterService("team-a", "vc1", func(svc *corev1.Service) { svc.Spec.Type = corev1.ServiceTypeLoadBalancer }), secret: full,
			want: want{ref: ref, err: "not reachable from the edge"},
		},
		"a server annotation is refused, even a harmless one": {
			svc: vclusterService("team-a", "vc1", annotatedServer("https://vc1.team-a.example.com")), secret: full,
			want: want{ref: ref, err: fmt.Sprintf(notRead, "https://vc1.team-a.example.com")},
		},
		"a loopback server annotation": {
			svc: vclusterService("team-a", "vc1", annotatedServer("https://127.0.0.1:6443")), secret: full,
			want: want{ref: ref, err: fmt.Sprintf(notRead, "https://127.0.0.1:6443")},
		},
		"a metadata server annotation": {
			svc: vclusterService("team-a", "vc1", annotatedServer("https://169.254.169.254")), secret: full,
			want: want{ref: ref, err: fmt.Sprintf(notRead, "https://169.254.169.254")},
		},
		"a plain http server annotation": {
			svc: vclusterService("team-a", "vc1", annotatedServer("http://vc1.team-a.example.com")), secret: full,
			want: want{ref: ref, err: fmt.Sprintf(notRead, "http://vc1.team-a.example.com")},
		},
		"no Secret": {
			svc:  vclusterService("team-a", "vc1", exposed),
			want: want{ref: ref, err: "Secret team-a/vc-vc1 not found"},
		},
		"Secret without a credential": {
			svc: vclusterService("team-a", "vc1", exposed), secret: vcSecret(map[string][]byte{"certificate-authority": c.CA}),
			want: want{ref: ref, err: `holds no credential: want key "config" (a kubeconfig with a token or client certificate), or "client-certificate" and "client-key" (it has keys "certificate-authority")`},
		},
		"broken kubeconfig": {
			svc: vclusterService("team-a", "vc1", exposed), secret: vcSecret(map[string][]byte{"config": []byte("{")}),
			want: want{ref: ref, err: `Secret team-a/vc-vc1: key "config": not a kubeconfig`},
		},
		"mismatched key": {
			svc:    vclusterService("team-a", "vc1", exposed),
			secret: vcSecret(map[string][]byte{"certificate-authority": c.CA, "client-certificate": c.Cert, "client-key": c.OtherKey}),
			want:   want{ref: ref, err: "not a matching PEM pair"},
		},
		"project that is no DNS label": {
			svc: vclusterService("team-a", "vc1", exposed), secret: full, ns: map[string]string{v1alpha1.LabelProject: "Payments_Team"},
			want: want{ref: withProject("Payments_Team"), err: `project "Payments_Team" is not valid`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := virtualClusterTarget("prod", tc.svc, tc.secret, tc.ns)
			if g.Ref != tc.want.ref {
				t.Errorf("ref %+v, want %+v", g.Ref, tc.want.ref)
			}
			if tc.want.err != "" {
				if g.Err == nil || !strings.Contains(g.Err.Error(), tc.want.err) {
					t.Errorf("error %v, want one containing %q", g.Err, tc.want.err)
				}
				if g.Err != nil && strings.Contains(g.Err.Error(), "BEGIN") {
					t.Errorf("error quotes secret material: %v", g.Err)
				}
				return
			}
			if g.Err != nil {
				t.Fatalf("unexpected error %v", g.Err)
			}
			wantTarget := model.Target{Ref: tc.want.ref, Upstream: tc.want.upstream}
			if diff := cmp.Diff(wantTarget, g.Target, cmp.Comparer(func(a, b *url.URL) bool { return a.String() == b.String() })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestIsVClusterService(t *testing.T) {
	tests := map[string]struct {
		svc  *corev1.Service
		want bool
	}{
		"the vcluster's Service":  {vclusterService("ns", "vc1", nil), true},
		"without a release label": {vclusterService("ns", "vc1", func(s *corev1.Service) { delete(s.Labels, "release") }), true},
		"the chart's headless Service": {vclusterService("ns", "vc1-headless", func(s *corev1.Service) {
			s.Labels["release"] = "vc1"
			s.Spec.ClusterIP = corev1.ClusterIPNone
		}), false},
		"another release's Service": {vclusterService("ns", "vc1-node-x", func(s *corev1.Service) { s.Labels["release"] = "vc1" }), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := isVClusterService(tc.svc); got != tc.want {
				t.Errorf("isVClusterService = %v, want %v", got, tc.want)
			}
		})
	}
}
