// Package testidp runs a real external OpenID Connect identity provider as its own process, for
// tests of single sign-on: cmd/testidp (zitadel/oidc's example provider over TLS, with a groups
// claim changed while it runs and refresh tokens that can be revoked), built with go build by
// the first test that needs it.
//
// Dex cannot be built from the Go module proxy (it replaces modules), and zitadel's example
// server alone has no groups and no way to change a user while it runs; cmd/testidp adds
// exactly that and nothing of the protocol: authorize, login form, token, refresh, userinfo and
// the JWKS are zitadel's op package.
package testidp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// User is a user of the IdP.
type User struct {
	ID, Username, Password, Email string
	EmailVerified                 bool
}

// Options configure an IdP. ClientID and RedirectURIs are required.
type Options struct {
	ClientID     string
	RedirectURIs []string
	Users        []User
}

// IdP is a running provider.
type IdP struct {
	Issuer       string
	ClientSecret string
	// CAFile is the CA (PEM) of the IdP's certificate: a connector's caFile.
	CAFile string
	// Client trusts the IdP's certificate.
	Client *http.Client
	p      *proc.Process
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// build compiles cmd/testidp once per test binary.
func build() (string, error) {
	buildOnce.Do(func() {
		root, err := toolbin.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "keygate-testidp-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "testidp")
		cmd := exec.Command("go", "build", "-o", binPath, "./internal/testidp/cmd/testidp")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build testidp: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// Start builds and starts an IdP; t's cleanup stops it.
func Start(t testing.TB, opts Options) *IdP {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := pki.NewCA("testidp CA")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Server("127.0.0.1", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := pair.Write(dir, "idp")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeUsers(usersFile, opts.Users); err != nil {
		t.Fatal(err)
	}
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	secret := "testidp-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p, err := proc.Start("testidp", dir, []string{"TESTIDP_CLIENT_SECRET=" + secret}, bin,
		"--address", addr, "--cert-file", certFile, "--key-file", keyFile, "--users-file", usersFile,
		"--client-id", opts.ClientID, "--redirect-uri", strings.Join(opts.RedirectURIs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	idp := &IdP{Issuer: "https://" + addr, ClientSecret: secret, CAFile: caFile, p: p}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = ca.Pool()
	idp.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := proc.WaitFor(ctx, p, "testidp", proc.HTTPReady(idp.Issuer+"/.well-known/openid-configuration")); err != nil {
		t.Fatal(err)
	}
	return idp
}

func writeUsers(path string, users []User) error {
	m := map[string]User{}
	for _, u := range users {
		m[u.ID] = u
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// SetGroups sets the groups claim of user id from now on.
func (i *IdP) SetGroups(t testing.TB, id string, groups []string) {
	t.Helper()
	body, _ := json.Marshal(groups)
	i.admin(t, "/admin/groups?user="+url.QueryEscape(id), body)
}

// Revoke makes the IdP refuse every refresh token of user id (invalid_grant).
func (i *IdP) Revoke(t testing.TB, id string) {
	t.Helper()
	i.admin(t, "/admin/revoke?user="+url.QueryEscape(id), nil)
}

func (i *IdP) admin(t testing.TB, path string, body []byte) {
	resp, err := i.Client.Post(i.Issuer+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("testidp %s: %s", path, resp.Status)
	}
}
