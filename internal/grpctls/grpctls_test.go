package grpctls_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/internal/grpctls/grpctlstest"
	"github.com/keygate-dev/keygate/internal/pki"
)

func TestValidate(t *testing.T) {
	files := grpctls.Config{CertFile: "s.crt", KeyFile: "s.key", ClientCAFile: "ca.crt"}
	tests := map[string]struct {
		c    grpctls.Config
		addr string
		want string // "" for no error
	}{
		"mutual TLS anywhere":        {files, "0.0.0.0:18000", ""},
		"plaintext on 127.0.0.1":     {grpctls.Config{InsecureLoopback: true}, "127.0.0.1:18000", ""},
		"plaintext on ::1":           {grpctls.Config{InsecureLoopback: true}, "[::1]:18000", ""},
		"plaintext on localhost":     {grpctls.Config{InsecureLoopback: true}, "localhost:18000", ""},
		"plaintext on every address": {grpctls.Config{InsecureLoopback: true}, "0.0.0.0:18000", `--grpc-insecure-loopback is refused with --grpc-address "0.0.0.0:18000": plaintext gRPC is allowed on a loopback address only`},
		"plaintext on an empty host": {grpctls.Config{InsecureLoopback: true}, ":18000", "allowed on a loopback address only"},
		"plaintext on a pod IP":      {grpctls.Config{InsecureLoopback: true}, "10.0.0.7:18000", "allowed on a loopback address only"},
		"plaintext on a DNS name":    {grpctls.Config{InsecureLoopback: true}, "xds.keygate.svc:18000", "allowed on a loopback address only"},
		"no files":                   {grpctls.Config{}, "127.0.0.1:18000", "--grpc-tls-cert-file is required: the gRPC port serves only mutual TLS"},
		"no client CA":               {grpctls.Config{CertFile: "s.crt", KeyFile: "s.key"}, "127.0.0.1:18000", "--grpc-client-ca-file is required"},
		"both TLS and plaintext":     {grpctls.Config{CertFile: "s.crt", InsecureLoopback: true}, "127.0.0.1:18000", "choose TLS or plaintext, not both"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.c.Validate(tc.addr, "grpc-address")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// serveHealth serves gRPC health with c's credentials on loopback and returns the address.
func serveHealth(t *testing.T, c grpctls.Config, onReload func(error)) string {
	t.Helper()
	creds, err := c.ServerCredentials(onReload)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(creds))
	healthpb.RegisterHealthServer(g, health.NewServer())
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

// check calls the health service at addr with creds and returns the call's error.
func check(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

// TestOnlyTheCAsClientsGetIn is the attack: a client that can reach the port but holds no
// certificate of the control plane's CA gets no answer, and the TLS alert says why.
func TestOnlyTheCAsClientsGetIn(t *testing.T) {
	cp, err := pki.WriteControlPlane(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveHealth(t, grpctls.Config{CertFile: cp.ServerCertFile, KeyFile: cp.ServerKeyFile, ClientCAFile: cp.CAFile}, nil)

	envoyCfg, err := grpctls.ClientConfig(cp.CAFile, cp.EnvoyCertFile, cp.EnvoyKeyFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t, addr, credentials.NewTLS(envoyCfg)); err != nil {
		t.Fatalf("Envoy's certificate: %v, want an answer", err)
	}
	if err := grpctlstest.Refusal(addr, envoyCfg); err != nil {
		t.Fatalf("Envoy's certificate: refused: %v", err)
	}
	strangers, err := grpctlstest.Strangers(cp.CAFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strangers {
		err := check(t, addr, s.Creds)
		t.Logf("%s: the call fails with %v", s.Name, err)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: the call returned %v, want Unavailable (no connection)", s.Name, err)
		}
		if s.TLS != nil {
			if err := grpctlstest.Refusal(addr, s.TLS); err == nil || !strings.Contains(err.Error(), s.Alert) {
				t.Errorf("%s: the handshake says %v, want %q", s.Name, err, s.Alert)
			}
		}
	}
}

// TestReload: new files apply at the next connection, without a restart; a half-written change
// is refused and the last good certificates stay in use.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	old, err := pki.WriteControlPlane(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// Keep the old client's files: the next WriteControlPlane overwrites dir.
	oldClient := copyClient(t, old, t.TempDir())
	var reloads []error
	addr := serveHealth(t, grpctls.Config{CertFile: old.ServerCertFile, KeyFile: old.ServerKeyFile, ClientCAFile: old.CAFile},
		func(err error) { reloads = append(reloads, err) })
	if err := grpctlstest.Refusal(addr, oldClient); err != nil {
		t.Fatalf("before the change: %v", err)
	}

	// Half-written: a new serving certificate beside the old key.
	staging, err := pki.WriteControlPlane(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, staging.ServerCertFile, old.ServerCertFile)
	if err := grpctlstest.Refusal(addr, oldClient); err != nil {
		t.Errorf("with a half-written change, the old client: %v, want it served with the last good files", err)
	}
	if len(reloads) != 1 || reloads[0] == nil || !strings.Contains(reloads[0].Error(), "not a matching PEM certificate and key") {
		t.Errorf("reloads = %v, want one refusal of the pair", reloads)
	}

	// Complete: every file of the new control plane.
	for _, f := range [][2]string{{staging.ServerKeyFile, old.ServerKeyFile}, {staging.CAFile, old.CAFile}} {
		copyFile(t, f[0], f[1])
	}
	newClient, err := grpctls.ClientConfig(staging.CAFile, staging.EnvoyCertFile, staging.EnvoyKeyFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := grpctlstest.Refusal(addr, newClient); err != nil {
		t.Errorf("after the change, the new client: %v, want in", err)
	}
	if err := grpctlstest.Refusal(addr, oldClient); err == nil {
		t.Errorf("after the change, the old client got in, want refused")
	}
	if len(reloads) != 2 || reloads[1] != nil {
		t.Errorf("reloads = %v, want a refusal, then a reload", reloads)
	}
}

// copyClient keeps cp's client side (its CA and Envoy's certificate) in dir and returns it.
func copyClient(t *testing.T, cp *pki.ControlPlane, dir string) *tls.Config {
	t.Helper()
	ca, cert, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "envoy.crt"), filepath.Join(dir, "envoy.key")
	copyFile(t, cp.CAFile, ca)
	copyFile(t, cp.EnvoyCertFile, cert)
	copyFile(t, cp.EnvoyKeyFile, key)
	cfg, err := grpctls.ClientConfig(ca, cert, key, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
