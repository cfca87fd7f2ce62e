package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// targetSource is where the bench declares targets for xds: the targets file, or Cluster
// objects in Kubernetes. Target i is named targetName(i).
type targetSource interface {
	name() string
	// start declares targets 0..len(urls)-1 with those upstream URLs, and returns xds's flags
	// for the source.
	start(ctx context.Context, dir string, urls []string) ([]string, error)
	// set adds target i (i is the number of targets) or changes its upstream URL.
	set(ctx context.Context, i int, url string) error
	close()
}

// fileSource is the targets file: every target a connected cluster with the same CA and client
// certificate files (each still gets its own secrets in Envoy).
type fileSource struct {
	dir, path string
	urls      []string
}

func (f *fileSource) name() string { return "file" }

func (f *fileSource) start(_ context.Context, dir string, urls []string) ([]string, error) {
	f.dir, f.path, f.urls = dir, filepath.Join(dir, "targets.yaml"), urls
	return []string{"--targets-file", f.path}, f.write()
}

func (f *fileSource) set(_ context.Context, i int, url string) error {
	if i == len(f.urls) {
		f.urls = append(f.urls, url)
	} else {
		f.urls[i] = url
	}
	return f.write()
}

// write writes the targets file and renames it into place, as operators and ConfigMap volumes
// do (xds reads complete files only).
func (f *fileSource) write() error {
	var b strings.Builder
	b.WriteString("clusters:\n")
	for i, url := range f.urls {
		// The PEM files are the bench's, in the parent directory.
		fmt.Fprintf(&b, "  - {name: %s, url: %q, tlsServerName: %s, caFile: ../../upstream-ca.crt, clientCertFile: ../../edge.crt, clientKeyFile: ../../edge.key}\n",
			targetName(i), url, targetHost(i))
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.path)
}

func (f *fileSource) close() {}

// secretNamespace holds the targets' Secrets; xds watches only it (--kube-secret-namespace), as
// recommended in production.
const secretNamespace = "keygate"

// kubeSource is a real kube-apiserver (with etcd) holding a Cluster and a kubernetes.io/tls
// Secret (CA, client certificate and key) per target, as cert-manager would write them. A new
// API server per run: each run starts from an empty etcd.
type kubeSource struct {
	caPEM, certPEM, keyPEM []byte

	count   int // targets declared: 0..count-1
	api     *kubetest.Server
	kube    kubernetes.Interface
	dynamic dynamic.Interface
}

func (k *kubeSource) name() string { return "kubernetes" }

func (k *kubeSource) start(ctx context.Context, dir string, urls []string) ([]string, error) {
	var err error
	if k.api, err = kubetest.Start(ctx, filepath.Join(dir, "kube")); err != nil {
		return nil, err
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := k.api.Apply(ctx, filepath.Join(root, "manifests", "crds", "targets.keygate.dev_clusters.yaml")); err != nil {
		return nil, err
	}
	// The default client-side rate limit (5 requests/s) would take over an hour for 20,000
	// objects; the API server's own limits still apply.
	cfg := rest.CopyConfig(k.api.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	if k.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if k.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if _, err := k.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: secretNamespace}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i, url := range urls {
		g.Go(func() error { return k.create(gctx, i, url) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	k.count = len(urls)
	kubeconfig := filepath.Join(dir, "platform.kubeconfig")
	if err := k.api.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	return []string{"--source", "kubernetes", "--kubeconfig", kubeconfig, "--kube-secret-namespace", secretNamespace}, nil
}

// create declares target i: its Secret, then its Cluster (a Cluster whose Secret is missing
// would be refused and logged until the Secret arrives).
func (k *kubeSource) create(ctx context.Context, i int, url string) error {
	name := targetName(i)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secretNamespace, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"ca.crt": k.caPEM, "tls.crt": k.certPEM, "tls.key": k.keyPEM},
	}
	if _, err := k.kube.CoreV1().Secrets(secretNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Secret %s: %w", name, err)
	}
	cluster := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.Group + "/" + v1alpha1.Version, "kind": "Cluster",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"config":        map[string]any{"secretName": name, "secretNamespace": secretNamespace},
			"server":        url,
			"tlsServerName": targetHost(i),
		},
	}}
	if _, err := k.dynamic.Resource(v1alpha1.ClusterResource).Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Cluster %s: %w", name, err)
	}
	return nil
}

func (k *kubeSource) set(ctx context.Context, i int, url string) error {
	if i == k.count {
		k.count++
		return k.create(ctx, i, url)
	}
	patch := fmt.Appendf(nil, `{"spec":{"server":%q}}`, url)
	_, err := k.dynamic.Resource(v1alpha1.ClusterResource).Patch(ctx, targetName(i), types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (k *kubeSource) close() {
	if k.api != nil {
		k.api.Stop()
		k.api = nil
	}
}
