package kube_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// TestCRDValidation creates Cluster objects on the real API server: the CRD's schema must
// refuse what the source could never serve, with a message that names the field.
func TestCRDValidation(t *testing.T) {
	if err := installCRDs(); err != nil {
		t.Fatal(err)
	}
	const valid = `
config: {secretName: demo-kubeconfig, secretNamespace: keygate}
`
	tests := map[string]struct {
		spec string // YAML of spec; "" for no spec at all
		want string // "" for accepted; else part of the 422 message
	}{
		"minimal": {spec: valid},
		"everything": {spec: `
displayName: Demo
description: The demo cluster.
config: {secretName: demo, secretNamespace: keygate, key: config}
server: https://10.0.0.12:6443/
tlsServerName: kubernetes.default.svc
grafana: {url: "http://grafana.monitoring:3000", tlsServerName: grafana.internal, config: {secretName: g, secretNamespace: keygate}}
spaces: [{name: team-a, project: payments}, {name: team-b, project: payments}]
`},
		"no spec":                 {want: "spec: Required value"},
		"no config":               {spec: `server: https://10.0.0.12:6443`, want: "spec.config: Required value"},
		"no secret namespace":     {spec: `config: {secretName: demo}`, want: "spec.config.secretNamespace: Required value"},
		"secret name not DNS":     {spec: `config: {secretName: Demo_Kubeconfig, secretNamespace: keygate}`, want: "spec.config.secretName: Invalid value"},
		"bad key":                 {spec: `config: {secretName: demo, secretNamespace: keygate, key: "a/b"}`, want: "spec.config.key: Invalid value"},
		"http server":             {spec: valid + `server: http://10.0.0.12:8080`, want: "spec.server: Invalid value"},
		"server with a path":      {spec: valid + `server: https://rancher.example.com/k8s/clusters/c-1`, want: "spec.server: Invalid value"},
		"server with credentials": {spec: valid + `server: https://user:pw@10.0.0.12`, want: "spec.server: Invalid value"},
		"grafana without url":     {spec: valid + `grafana: {tlsServerName: g}`, want: "spec.grafana.url: Required value"},
		"grafana ftp":             {spec: valid + `grafana: {url: "ftp://grafana"}`, want: "spec.grafana.url: Invalid value"},
		"space not a DNS label":   {spec: valid + `spaces: [{name: Team.A, project: p}]`, want: "spec.spaces[0].name: Invalid value"},
		"space without project":   {spec: valid + `spaces: [{name: team-a}]`, want: "spec.spaces[0].project: Required value"},
		"duplicate space":         {spec: valid + `spaces: [{name: team-a, project: p1}, {name: team-a, project: p2}]`, want: "spec.spaces[1]: Duplicate value"},
		"unknown field":           {spec: valid + `serverURL: https://10.0.0.12`, want: `unknown field "spec.serverURL"`},
	}
	ctx := context.Background()
	res := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := map[string]any{"apiVersion": v1alpha1.Group + "/" + v1alpha1.Version, "kind": "Cluster",
				"metadata": map[string]any{"name": "crd-" + strings.ToLower(strings.ReplaceAll(name, " ", "-"))}}
			if tc.spec != "" {
				var spec map[string]any
				if err := yaml.Unmarshal([]byte(tc.spec), &spec); err != nil {
					t.Fatal(err)
				}
				obj["spec"] = spec
			}
			// Strict, as kubectl validates by default: unknown fields are errors, not dropped.
			_, err := res.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{FieldValidation: "Strict"})
			if err == nil {
				t.Cleanup(func() { _ = res.Delete(ctx, obj["metadata"].(map[string]any)["name"].(string), metav1.DeleteOptions{}) })
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			case tc.want != "" && !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err):
				t.Fatalf("error %v is not a 422 or 400", err)
			}
		})
	}
}

// TestExamples applies manifests/examples: the documented objects are valid.
func TestExamples(t *testing.T) {
	if err := installCRDs(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := kubeAPI.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keygate"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeAPI.Apply(ctx, filepath.Join(root, "manifests", "examples", "clusters.yaml"),
		filepath.Join(root, "manifests", "examples", "virtualclusters.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prod", "staging"} {
		if err := kubeAPI.Dynamic.Resource(v1alpha1.ClusterResource).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	}
	if err := kubeAPI.Dynamic.Resource(v1alpha1.VirtualClusterResource).Delete(ctx, "prod.team-a.vc1", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}
