package kube

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

const testToken = "s3cr3t-token-value-that-must-never-be-logged"

func secret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keygate", Name: name}, Data: data}
}

func ref(name string) v1alpha1.SecretRef {
	return v1alpha1.SecretRef{SecretNamespace: "keygate", SecretName: name}
}

// want is one expected result: an upstream, or an error containing err.
type want struct {
	ref      edgepath.Ref
	upstream model.Upstream
	err      string
}

func TestClusterTargets(t *testing.T) {
	c := fixture.NewCreds(t)
	const server = "https://10.0.0.12:6443"
	certKubeconfig := fixture.Kubeconfig(t, server, func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		cl.CertificateAuthorityData, u.ClientCertificateData, u.ClientKeyData = c.CA, c.Cert, c.Key
	})
	clusterRef := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	grafanaRef := edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}
	certUpstream := model.Upstream{URL: fixture.MustURL(t, server), CA: c.CA, ClientCert: c.Cert, ClientKey: c.Key}
	kubeconfigWith := func(edit func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)) []byte {
		return fixture.Kubeconfig(t, server, func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			cl.CertificateAuthorityData, u.ClientCertificateData, u.ClientKeyData = c.CA, c.Cert, c.Key
			edit(cl, u)
		})
	}

	tests := map[string]struct {
		spec    v1alpha1.ClusterSpec
		secrets []*corev1.Secret
		want    []want
	}{
		"kubeconfig with a client certificate": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: clusterRef, upstream: certUpstream}},
		},
		"kubeconfig with a token and tls-server-name": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": fixture.Kubeconfig(t, server, func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				cl.CertificateAuthorityData, cl.TLSServerName, u.Token = c.CA, "api.demo.internal", testToken
			})})},
			want: []want{{ref: clusterRef, upstream: model.Upstream{URL: fixture.MustURL(t, server), CA: c.CA, Token: testToken, ServerName: "api.demo.internal"}}},
		},
		"kubeconfig under Loft's key config": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo"), Key: "config"}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"config": certKubeconfig})},
			want:    []want{{ref: clusterRef, upstream: certUpstream}},
		},
		"spec overrides the kubeconfig's server and name": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}, Server: "https://api.demo.example.com:443/", TLSServerName: "10.0.0.12"},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want: []want{{ref: clusterRef, upstream: model.Upstream{URL: fixture.MustURL(t, "https://api.demo.example.com:443"), CA: c.CA,
				ClientCert: c.Cert, ClientKey: c.Key, ServerName: "10.0.0.12"}}},
		},
		"service-account token Secret": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("sa")}, Server: server},
			secrets: []*corev1.Secret{secret("sa", map[string][]byte{"ca.crt": c.CA, "token": []byte(testToken + "\n"), "namespace": []byte("kube-system")})},
			want:    []want{{ref: clusterRef, upstream: model.Upstream{URL: fixture.MustURL(t, server), CA: c.CA, Token: testToken}}},
		},
		"tls Secret": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("tls")}, Server: server},
			secrets: []*corev1.Secret{secret("tls", map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert, "tls.key": c.Key})},
			want:    []want{{ref: clusterRef, upstream: certUpstream}},
		},
		"spaces": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Spaces: []v1alpha1.Space{{Name: "team-b", Project: "p2"}, {Name: "team-a", Project: "p1"}}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=p1,team-b=p2"}, upstream: certUpstream}},
		},
		"grafana over http": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}, Grafana: &v1alpha1.Grafana{URL: "http://grafana.monitoring:3000"}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want: []want{{ref: clusterRef, upstream: certUpstream},
				{ref: grafanaRef, upstream: model.Upstream{URL: fixture.MustURL(t, "http://grafana.monitoring:3000")}}},
		},
		"grafana over https with a CA and client certificate": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Grafana: &v1alpha1.Grafana{URL: "https://grafana.example.com", TLSServerName: "grafana.internal", Config: &v1alpha1.SecretRef{SecretNamespace: "keygate", SecretName: "grafana"}}},
			secrets: []*corev1.Secret{
				secret("demo", map[string][]byte{"kubeconfig": certKubeconfig}),
				secret("grafana", map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert, "tls.key": c.Key}),
			},
			want: []want{{ref: clusterRef, upstream: certUpstream},
				{ref: grafanaRef, upstream: model.Upstream{URL: fixture.MustURL(t, "https://grafana.example.com"), CA: c.CA, ClientCert: c.Cert, ClientKey: c.Key, ServerName: "grafana.internal"}}},
		},
		"a broken grafana leaves the cluster alone": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}, Grafana: &v1alpha1.Grafana{URL: "https://grafana.example.com"}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: clusterRef, upstream: certUpstream}, {ref: grafanaRef, err: "no CA: an https upstream needs"}},
		},
		"grafana Secret missing": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Grafana: &v1alpha1.Grafana{URL: "https://grafana.example.com", Config: &v1alpha1.SecretRef{SecretNamespace: "keygate", SecretName: "grafana"}}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: clusterRef, upstream: certUpstream}, {ref: grafanaRef, err: "spec.grafana.config: Secret keygate/grafana not found"}},
		},
		"grafana with a token": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Grafana: &v1alpha1.Grafana{URL: "https://grafana.example.com", Config: &v1alpha1.SecretRef{SecretNamespace: "keygate", SecretName: "grafana"}}},
			secrets: []*corev1.Secret{
				secret("demo", map[string][]byte{"kubeconfig": certKubeconfig}),
				secret("grafana", map[string][]byte{"ca.crt": c.CA, "token": []byte(testToken)}),
			},
			want: []want{{ref: clusterRef, upstream: certUpstream}, {ref: grafanaRef, err: `key "token" is not used for Grafana`}},
		},
		"grafana http with a CA": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Grafana: &v1alpha1.Grafana{URL: "http://grafana:3000", Config: &v1alpha1.SecretRef{SecretNamespace: "keygate", SecretName: "grafana"}}},
			secrets: []*corev1.Secret{
				secret("demo", map[string][]byte{"kubeconfig": certKubeconfig}),
				secret("grafana", map[string][]byte{"ca.crt": c.CA}),
			},
			want: []want{{ref: clusterRef, upstream: certUpstream}, {ref: grafanaRef, err: "for an http upstream; use an https URL"}},
		},
		"Secret missing": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			want: []want{{ref: clusterRef, err: "Secret keygate/demo not found"}},
		},
		"named key missing": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo"), Key: "config"}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: clusterRef, err: `Secret keygate/demo: has no key "config" (spec.config.key); it has keys "kubeconfig"`}},
		},
		"no credential": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}, Server: server},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"ca.crt": c.CA})},
			want:    []want{{ref: clusterRef, err: `Secret keygate/demo: holds no credential: want key "kubeconfig", or "token", or "tls.crt" and "tls.key" (it has keys "ca.crt")`}},
		},
		"no server without a kubeconfig": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("sa")}},
			secrets: []*corev1.Secret{secret("sa", map[string][]byte{"ca.crt": c.CA, "token": []byte(testToken)})},
			want:    []want{{ref: clusterRef, err: "spec.server is required when Secret keygate/sa holds no kubeconfig"}},
		},
		"no CA": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("sa")}, Server: server},
			secrets: []*corev1.Secret{secret("sa", map[string][]byte{"token": []byte(testToken)})},
			want:    []want{{ref: clusterRef, err: "no CA: an https upstream needs ca.crt"}},
		},
		"CA is not a certificate": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("tls")}, Server: server},
			secrets: []*corev1.Secret{secret("tls", map[string][]byte{"ca.crt": c.Key, "tls.crt": c.Cert, "tls.key": c.Key})},
			want:    []want{{ref: clusterRef, err: `CA: holds a PEM "PRIVATE KEY" block`}},
		},
		"certificate and key do not match": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("tls")}, Server: server},
			secrets: []*corev1.Secret{secret("tls", map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert, "tls.key": c.OtherKey})},
			want:    []want{{ref: clusterRef, err: "client certificate and key: not a matching PEM pair"}},
		},
		"certificate without key": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("tls")}, Server: server},
			secrets: []*corev1.Secret{secret("tls", map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert})},
			want:    []want{{ref: clusterRef, err: "a client certificate without its key"}},
		},
		"token and certificate": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("tls")}, Server: server},
			secrets: []*corev1.Secret{secret("tls", map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert, "tls.key": c.Key, "token": []byte(testToken)})},
			want:    []want{{ref: clusterRef, err: "both a client certificate and a token: keep one"}},
		},
		"http server": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": fixture.Kubeconfig(t, "http://10.0.0.12:8080", func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				u.Token = testToken
			})})},
			want: []want{{ref: clusterRef, err: `server: "http://10.0.0.12:8080": scheme must be https`}},
		},
		"server with a path": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}, Server: "https://rancher.example.com/k8s/clusters/c-1"},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: clusterRef, err: "must not have a path, query or fragment"}},
		},
		"not a kubeconfig": {
			spec:    v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": []byte("clusters: {")})},
			want:    []want{{ref: clusterRef, err: `Secret keygate/demo: key "kubeconfig": not a kubeconfig`}},
		},
		"kubeconfig without a current context": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": []byte(
				"apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\n")})},
			want: []want{{ref: clusterRef, err: "no current-context, and 2 contexts to choose from"}},
		},
		"kubeconfig with an exec plugin": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": kubeconfigWith(func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				u.ClientCertificateData, u.ClientKeyData = nil, nil
				u.Exec = &clientcmdapi.ExecConfig{Command: "aws", APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
			})})},
			want: []want{{ref: clusterRef, err: "exec credential plugins cannot run in Envoy"}},
		},
		"kubeconfig that skips TLS verification": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": kubeconfigWith(func(cl *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
				cl.CertificateAuthorityData, cl.InsecureSkipTLSVerify = nil, true
			})})},
			want: []want{{ref: clusterRef, err: "insecure-skip-tls-verify: the edge always verifies upstream certificates"}},
		},
		"kubeconfig naming files": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": kubeconfigWith(func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				cl.CertificateAuthorityData, cl.CertificateAuthority = nil, "/etc/kubernetes/ca.crt"
				u.ClientCertificateData, u.ClientCertificate = nil, "/home/me/.kube/me.crt"
			})})},
			want: []want{{ref: clusterRef, err: "certificate-authority names a file; inline it as certificate-authority-data; client-certificate names a file"}},
		},
		"kubeconfig that impersonates": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": kubeconfigWith(func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
				u.Impersonate = "admin"
			})})},
			want: []want{{ref: clusterRef, err: "the edge impersonates each request's user itself"}},
		},
		"anonymous kubeconfig": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": fixture.Kubeconfig(t, server, func(cl *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
				cl.CertificateAuthorityData = c.CA
			})})},
			want: []want{{ref: clusterRef, err: "the kubeconfig's user has no token or client certificate"}},
		},
		"duplicate space": {
			spec: v1alpha1.ClusterSpec{Config: v1alpha1.ClusterConfig{SecretRef: ref("demo")},
				Spaces: []v1alpha1.Space{{Name: "team-a", Project: "p1"}, {Name: "team-a", Project: "p2"}}},
			secrets: []*corev1.Secret{secret("demo", map[string][]byte{"kubeconfig": certKubeconfig})},
			want:    []want{{ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=p1"}, err: "spec.spaces[1] (team-a): duplicate space"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secrets := map[string]*corev1.Secret{}
			for _, s := range tc.secrets {
				secrets[s.Namespace+"/"+s.Name] = s
			}
			lookup := func(r v1alpha1.SecretRef) (*corev1.Secret, error) {
				if s, ok := secrets[r.SecretNamespace+"/"+r.SecretName]; ok {
					return s, nil
				}
				return nil, fmt.Errorf("Secret %s/%s not found", r.SecretNamespace, r.SecretName)
			}
			cluster := &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "demo"}, Spec: tc.spec}
			got := clusterTargets(cluster, lookup)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d results, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Ref != w.ref {
					t.Errorf("result %d: ref %+v, want %+v", i, g.Ref, w.ref)
				}
				if w.err != "" {
					if g.Err == nil || !strings.Contains(g.Err.Error(), w.err) {
						t.Errorf("result %d: error %v, want one containing %q", i, g.Err, w.err)
					}
					// Errors reach the log: they name keys, never quote the credential.
					if g.Err != nil && (strings.Contains(g.Err.Error(), testToken) || strings.Contains(g.Err.Error(), "BEGIN")) {
						t.Errorf("result %d: error quotes secret material: %v", i, g.Err)
					}
					continue
				}
				if g.Err != nil {
					t.Errorf("result %d: unexpected error %v", i, g.Err)
					continue
				}
				wantTarget := model.Target{Ref: w.ref, Upstream: w.upstream}
				if diff := cmp.Diff(wantTarget, g.Target, cmp.Comparer(func(a, b *url.URL) bool { return a.String() == b.String() })); diff != "" {
					t.Errorf("result %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestDeclaredTarget(t *testing.T) {
	c := fixture.NewCreds(t)
	vcConfig := fixture.Kubeconfig(t, "https://localhost:8443", func(cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		cl.CertificateAuthorityData, u.ClientCertificateData, u.ClientKeyData = c.CA, c.Cert, c.Key
	})
	lookup := func(r v1alpha1.SecretRef) (*corev1.Secret, error) {
		return secret(r.SecretName, map[string][]byte{"config": vcConfig}), nil
	}
	vc := &v1alpha1.VirtualCluster{Spec: v1alpha1.VirtualClusterSpec{
		Cluster: "prod", Namespace: "team-a", Name: "vc1", Project: "payments",
		Config: v1alpha1.ClusterConfig{SecretRef: ref("prod-team-a-vc1"), Key: "config"},
		Server: "https://vc1.team-a.example.com", TLSServerName: "vc1.team-a.svc",
	}}
	got := declaredTarget(vc, lookup)
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	want := model.Target{
		Ref: edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "prod", Namespace: "team-a", VirtualCluster: "vc1", Project: "payments"},
		Upstream: model.Upstream{URL: fixture.MustURL(t, "https://vc1.team-a.example.com"), CA: c.CA, ClientCert: c.Cert, ClientKey: c.Key,
			ServerName: "vc1.team-a.svc"},
	}
	if diff := cmp.Diff(want, got.Target, cmp.Comparer(func(a, b *url.URL) bool { return a.String() == b.String() })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	vc.Spec.Namespace = "Team_A"
	if got := declaredTarget(vc, lookup); got.Err == nil || !strings.Contains(got.Err.Error(), `namespace "Team_A" is not valid`) {
		t.Errorf("a namespace that is no DNS label: %v", got.Err)
	}
	vc.Spec.Namespace = "team-a"
	// The server is checked wherever it comes from: spec.server, or the kubeconfig, often a
	// copy of vcluster's Secret, whose server the tenant wrote.
	for server, want := range map[string]string{
		"https://169.254.169.254": `spec.server: "https://169.254.169.254": a link-local address`,
		"https://127.0.0.1:6443":  `spec.server: "https://127.0.0.1:6443": a loopback address`,
		"":                        `Secret keygate/prod-team-a-vc1: the kubeconfig's server: "https://localhost:8443": a loopback name`,
	} {
		vc.Spec.Server = server
		if got := declaredTarget(vc, lookup); got.Err == nil || !strings.Contains(got.Err.Error(), want) {
			t.Errorf("server %q: %v, want an error containing %q", server, got.Err, want)
		}
	}
}
