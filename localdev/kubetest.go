package localdev

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
)

// StartEtcd starts an etcd on free loopback ports, with its data and log under dir, for
// kube-apiservers started with StartAPIServer. It is how tests outside localdev
// (internal/kubetest) get the same etcd as the local platform.
func StartEtcd(ctx context.Context, dir string) (*proc.Process, string, error) {
	return startEtcd(ctx, dir)
}

// StartAPIServer starts a kube-apiserver named name on etcdURL, as the local platform starts
// its clusters: a serving certificate for 127.0.0.1 from ca, client certificates from ca
// accepted, RBAC on, and Admin a system:masters client. State and logs go under dir.
func StartAPIServer(ctx context.Context, dir, name, etcdURL string, ca *pki.CA) (*APIServer, error) {
	pkiDir := filepath.Join(dir, "pki")
	c := &apiServerCerts{ca: ca, caFile: filepath.Join(pkiDir, "ca.crt"), saKeyFile: filepath.Join(pkiDir, "sa.key"), serverDir: pkiDir}
	if err := writeFile(c.caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	admin, err := ca.Client("keygate-test-admin", "system:masters")
	if err != nil {
		return nil, err
	}
	c.adminPair = admin
	sa, err := pki.NewServiceAccountKey()
	if err != nil {
		return nil, err
	}
	if err := writeFile(c.saKeyFile, sa, 0o600); err != nil {
		return nil, err
	}
	return startAPIServer(ctx, dir, name, etcdURL, c)
}

// Stop stops the API server (before its etcd: an API server whose etcd is gone is slow to exit).
func (a *APIServer) Stop() { a.stop() }

// Kill ends the API server at once, as a crash would, and waits for it to exit. A graceful stop
// waits for open watches up to its 10 s grace; tests that throw the state away need not.
func (a *APIServer) Kill() {
	_ = a.p.Signal(syscall.SIGKILL)
	<-a.p.Exited()
}
