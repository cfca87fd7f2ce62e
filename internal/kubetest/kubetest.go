// Package kubetest gives tests a real Kubernetes API: one etcd and one kube-apiserver on free
// loopback ports (the same as the local platform's, from internal/kubeserver), started once per test
// binary from TestMain, with helpers to install CRDs and issue client credentials.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keygate-dev/keygate/internal/kubeserver"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
)

// Server is a running kube-apiserver and its etcd.
type Server struct {
	// URL is the API server's base URL, e.g. https://127.0.0.1:41234.
	URL string
	// Config and Client reach the API server as a system:masters user.
	Config *rest.Config
	Client kubernetes.Interface
	// Dynamic is a dynamic client with Config, for custom resources.
	Dynamic dynamic.Interface
	// CA signed the API server's serving certificate, and client certificates it signs are
	// accepted as the user in their common name (see ClientConfig).
	CA *pki.CA
	// Dir holds the state and the logs (Dir/logs).
	Dir string

	etcd    *proc.Process
	etcdURL string
	certs   *kubeserver.Certs
	api     *kubeserver.APIServer
}

// Start starts etcd and a kube-apiserver with their state under dir and waits until the API
// server is ready (a few seconds).
func Start(ctx context.Context, dir string) (*Server, error) {
	ca, err := pki.NewCA("keygate kubetest CA")
	if err != nil {
		return nil, err
	}
	etcd, etcdURL, err := kubeserver.StartEtcd(ctx, dir)
	if err != nil {
		return nil, err
	}
	certs, err := kubeserver.NewCerts(ca, filepath.Join(dir, "pki"), "ca.crt", "keygate-test-admin")
	if err != nil {
		etcd.Stop(10 * time.Second)
		return nil, err
	}
	api, err := kubeserver.StartAPIServer(ctx, dir, "test", etcdURL, certs)
	if err != nil {
		etcd.Stop(10 * time.Second)
		return nil, err
	}
	s := &Server{URL: api.URL, Config: api.AdminConfig, Client: api.Admin, CA: ca, Dir: dir, etcd: etcd, etcdURL: etcdURL, certs: certs, api: api}
	if s.Dynamic, err = dynamic.NewForConfig(s.Config); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartPeer starts another kube-apiserver named name (a DNS label, unique per Server) on s's
// etcd under its own prefix, as the local platform runs its connected clusters: a second
// cluster for tests at the cost of one process (about a second), with the same CA, so that
// client certificates from CA work in both. Its state and logs go to Dir/name. Stop or Kill
// it; stopping s does not.
func (s *Server) StartPeer(ctx context.Context, name string) (*Server, error) {
	if s.etcd == nil {
		return nil, errors.New("kubetest: StartPeer of a peer: start it from the Server that owns etcd")
	}
	dir := filepath.Join(s.Dir, name)
	api, err := kubeserver.StartAPIServer(ctx, dir, name, s.etcdURL, s.certs)
	if err != nil {
		return nil, err
	}
	p := &Server{URL: api.URL, Config: api.AdminConfig, Client: api.Admin, CA: s.CA, Dir: dir, etcdURL: s.etcdURL, certs: s.certs, api: api}
	if p.Dynamic, err = dynamic.NewForConfig(p.Config); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop ends the API server, then etcd (unless s is a peer, whose etcd is its origin's). The API
// server is killed: its state is thrown away, and a graceful stop would wait for the open
// watches of the code under test.
func (s *Server) Stop() {
	s.api.Kill()
	if s.etcd != nil {
		s.etcd.Stop(10 * time.Second)
	}
}

// Main runs a package's tests with a Server started before them (in *srv) and stopped after,
// and returns the exit code for os.Exit. Its state goes to a temporary directory that is
// removed when the tests pass and kept (its path printed) when they fail, for the logs.
func Main(m *testing.M, srv **Server) int {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: start kube-apiserver: %v\n(state and logs in %s)\n", err, dir)
		return 1
	}
	*srv = s
	code := m.Run()
	s.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "kubetest: kube-apiserver state and logs kept in %s\n", dir)
		return code
	}
	os.RemoveAll(dir)
	return code
}

// ClientConfig is a rest config for user (in groups) authenticated by a client certificate
// from CA: a user with no more rights than RBAC gives it.
func (s *Server) ClientConfig(user string, groups ...string) (*rest.Config, pki.Pair, error) {
	pair, err := s.CA.Client(user, groups...)
	if err != nil {
		return nil, pki.Pair{}, err
	}
	cfg := rest.CopyConfig(s.Config)
	cfg.TLSClientConfig.CertData, cfg.TLSClientConfig.KeyData = pair.CertPEM, pair.KeyPEM
	return cfg, pair, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Apply creates, or replaces, every object in the YAML files, in order, as `kubectl apply`
// would without its merge: objects are written whole. It waits until each
// CustomResourceDefinition is served, so that later objects (and tests) can use it.
func (s *Server) Apply(ctx context.Context, files ...string) error {
	disc := memory.NewMemCacheClient(s.Client.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			gvk := obj.GroupVersionKind()
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return fmt.Errorf("%s: %s %s: %w", f, gvk.Kind, obj.GetName(), err)
			}
			var res dynamic.ResourceInterface = s.Dynamic.Resource(mapping.Resource)
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				res = s.Dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
			}
			if old, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
				obj.SetResourceVersion(old.GetResourceVersion())
				if _, err := res.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
					return fmt.Errorf("%s: update %s %s: %w", f, gvk.Kind, obj.GetName(), err)
				}
			} else if _, err := res.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: create %s %s: %w", f, gvk.Kind, obj.GetName(), err)
			}
			if mapping.Resource == crdResource {
				if err := s.waitEstablished(ctx, obj.GetName()); err != nil {
					return err
				}
				// The new resource is not in the discovery cache yet.
				mapper.Reset()
			}
		}
	}
	return nil
}

// waitEstablished waits for a CRD's Established condition, after which its resource is served.
func (s *Server) waitEstablished(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return proc.WaitFor(ctx, nil, "CRD "+name, func(ctx context.Context) error {
		crd, err := s.Dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return errors.New("not established yet")
	})
}

// readObjects decodes every YAML document of a file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// WriteKubeconfig writes a kubeconfig for Config (the system:masters user) to path, for
// programs under test that take a --kubeconfig.
func (s *Server) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: s.Config.CertData, ClientKeyData: s.Config.KeyData}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	cfg.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*cfg, path)
}
