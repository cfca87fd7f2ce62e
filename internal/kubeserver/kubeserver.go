// Package kubeserver starts real Kubernetes control planes on loopback: one etcd and
// kube-apiservers on it, each under its own etcd prefix, with certificates from one CA. The
// local platform (localdev) runs its demo clusters with it, and tests (internal/kubetest) theirs.
package kubeserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// Users every API server started here knows, as a platform would set up a connected cluster.
const (
	// EdgeUser is the edge's identity towards upstream API servers: a client certificate
	// whose user may impersonate (and nothing else).
	EdgeUser = "keygate-edge"
	// AdminUser is a cluster admin on every API server: the user of local admin keys.
	AdminUser = "admin"

	edgeImpersonate = "keygate-edge-impersonator"
)

// APIServer is a running kube-apiserver.
type APIServer struct {
	Name string
	// URL is where the API server listens, e.g. https://127.0.0.1:6443.
	URL string
	// Admin talks to the API server directly (not through the edge) as a system:masters user.
	Admin kubernetes.Interface
	// AdminConfig is the rest config behind Admin.
	AdminConfig *rest.Config

	p *proc.Process
}

// StartEtcd starts one etcd on free loopback ports for all API servers (each uses its own
// --etcd-prefix), with its data and log under dir, and returns its client URL.
func StartEtcd(ctx context.Context, dir string) (*proc.Process, string, error) {
	bin, err := toolbin.Path("etcd")
	if err != nil {
		return nil, "", err
	}
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, "", err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	p, err := proc.Start("etcd", filepath.Join(dir, "logs"), nil, bin,
		"--name", "local",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "local="+peer,
		// Local state is thrown away at every start: skipping fsync makes start-up fast.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitFor(ctx, p, "etcd", proc.HTTPReady(client+"/health")); err != nil {
		p.Stop(5 * time.Second)
		return nil, "", err
	}
	return p, client, nil
}

// Certs are the CA and files every API server started on one etcd shares.
type Certs struct {
	// CA signs the serving certificates, and client certificates it signs are accepted as the
	// user in their common name.
	CA *pki.CA
	// CAFile is CA's certificate on disk; ServerDir holds the serving certificates.
	CAFile, ServerDir string
	saKeyFile         string
	adminPair         pki.Pair
	// kubeletCert and kubeletKey are the API servers' client certificate towards kubelets
	// (--kubelet-client-certificate): kubelets, and localdev's stand-in, refuse anonymous
	// callers.
	kubeletCert, kubeletKey string
}

// KubeletClientUser is the user of the API servers' client certificate towards kubelets.
const KubeletClientUser = "kube-apiserver-kubelet-client"

// NewCerts writes ca's certificate to dir/caFileName, a service-account key beside it, and
// issues a system:masters client certificate named adminName for APIServer.Admin.
func NewCerts(ca *pki.CA, dir, caFileName, adminName string) (*Certs, error) {
	c := &Certs{CA: ca, CAFile: filepath.Join(dir, caFileName), ServerDir: dir, saKeyFile: filepath.Join(dir, "sa.key")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.CAFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	var err error
	if c.adminPair, err = ca.Client(adminName, "system:masters"); err != nil {
		return nil, err
	}
	kubelet, err := ca.Client(KubeletClientUser)
	if err != nil {
		return nil, err
	}
	if c.kubeletCert, c.kubeletKey, err = kubelet.Write(dir, "apiserver-kubelet-client"); err != nil {
		return nil, err
	}
	sa, err := pki.NewServiceAccountKey()
	if err != nil {
		return nil, err
	}
	return c, os.WriteFile(c.saKeyFile, sa, 0o600)
}

// StartAPIServer runs a kube-apiserver named name on etcdURL, with a serving certificate for
// 127.0.0.1 from c.CA, client certificates from the same CA accepted, RBAC on (EdgeUser may
// impersonate, AdminUser is a cluster admin), and Admin a system:masters client. Its log goes
// under dir. extraArgs are added to its command line (an OIDC issuer to trust, say).
func StartAPIServer(ctx context.Context, dir, name, etcdURL string, c *Certs, extraArgs ...string) (*APIServer, error) {
	bin, err := toolbin.Path("kube-apiserver")
	if err != nil {
		return nil, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := c.writeServing(name)
	if err != nil {
		return nil, err
	}
	p, err := proc.Start("kube-apiserver-"+name, filepath.Join(dir, "logs"), nil, bin,
		append(apiServerArgs(name, etcdURL, port, certFile, keyFile, c), extraArgs...)...)
	if err != nil {
		return nil, err
	}
	a, err := newAPIServer(name, port, c, p)
	if err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := a.waitReady(wctx); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	if err := a.bootstrapRBAC(wctx); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("kube-apiserver %s: %w", name, err)
	}
	return a, nil
}

// writeServing issues the serving certificate of API server name and writes it under
// c.ServerDir.
func (c *Certs) writeServing(name string) (certFile, keyFile string, err error) {
	serving, err := c.CA.Server(name, "127.0.0.1", "localhost")
	if err != nil {
		return "", "", err
	}
	return serving.Write(c.ServerDir, "apiserver-"+name)
}

// apiServerArgs are the command line of API server name.
func apiServerArgs(name, etcdURL string, port int, certFile, keyFile string, c *Certs) []string {
	return []string{
		"--etcd-servers", etcdURL,
		"--etcd-prefix", "/registry-" + name,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port),
		"--tls-cert-file", certFile,
		"--tls-private-key-file", keyFile,
		"--client-ca-file", c.CAFile,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", c.saKeyFile,
		"--service-account-signing-key-file", c.saKeyFile,
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--authorization-mode", "RBAC",
		// No controller manager runs here to create the default service account, so pods are
		// admitted without one; nothing schedules them, which is all a demo needs.
		"--disable-admission-plugins", "ServiceAccount",
		"--profiling=false",
		// exec, attach, port-forward and logs go on to the pod's kubelet, verified by the same
		// CA (localdev's stand-in, internal/kubeletstub, has a certificate of it).
		"--kubelet-client-certificate", c.kubeletCert,
		"--kubelet-client-key", c.kubeletKey,
		"--kubelet-certificate-authority", c.CAFile,
	}
}

// newAPIServer is the started process p with its system:masters client.
func newAPIServer(name string, port int, c *Certs, p *proc.Process) (*APIServer, error) {
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := &rest.Config{
		Host: url,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.CA.CertPEM, CertData: c.adminPair.CertPEM, KeyData: c.adminPair.KeyPEM,
		},
		QPS: 100, Burst: 200,
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &APIServer{Name: name, URL: url, Admin: client, AdminConfig: cfg, p: p}, nil
}

// waitReady waits until the API server's /readyz answers 200 (or it exits, or ctx ends).
func (a *APIServer) waitReady(ctx context.Context) error {
	return proc.WaitFor(ctx, a.p, "kube-apiserver "+a.Name, func(ctx context.Context) error {
		body, err := a.Admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%v: %s", err, body)
		}
		return nil
	})
}

// bootstrapRBAC lets the edge impersonate (users, groups, the access-key extra) and makes the
// user "admin" a cluster admin, as a platform would set up a connected cluster.
func (a *APIServer) bootstrapRBAC(ctx context.Context) error {
	rbac := a.Admin.RbacV1()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: edgeImpersonate},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"users", "groups"}, Verbs: []string{"impersonate"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"userextras/loft-access-key"}, Verbs: []string{"impersonate"}},
		},
	}
	bindings := []*rbacv1.ClusterRoleBinding{
		{
			ObjectMeta: metav1.ObjectMeta{Name: edgeImpersonate},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: edgeImpersonate},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: EdgeUser}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "keygate-admin"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: AdminUser}},
		},
	}
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
	}
	for _, b := range bindings {
		if _, err := rbac.ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", b.Name, err)
		}
	}
	return nil
}

// CreateNamespace creates a namespace directly on the API server (not through the edge).
func (a *APIServer) CreateNamespace(ctx context.Context, name string) error {
	_, err := a.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Stop stops the API server (before its etcd: an API server whose etcd is gone is slow to
// exit). A nil APIServer is already stopped.
func (a *APIServer) Stop() {
	if a != nil && a.p != nil {
		a.p.Stop(10 * time.Second)
	}
}

// Kill ends the API server at once, as a crash would, and waits for it to exit. A graceful stop
// waits for open watches up to its 10 s grace; tests that throw the state away need not.
func (a *APIServer) Kill() {
	_ = a.p.Signal(syscall.SIGKILL)
	<-a.p.Exited()
}
