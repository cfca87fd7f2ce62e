// Package testidp runs a real external OpenID Connect identity provider as its own process, for
// tests of single sign-on: cmd/testidp (zitadel/oidc's example provider over TLS, with a groups
// claim changed while it runs and refresh tokens that can be revoked), built with go build by
// the first test that needs it. Launch starts one outside a test: localdev's platform offers
// it as a single sign-on connector (the e2e tests, and `make run`).
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
	// Dir holds the IdP's certificates, users file and log; Start uses a temporary one.
	Dir string
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

// Launch builds and starts an IdP outside a test (localdev's platform): the caller stops it.
// Its files and log go to opts.Dir, which must exist.
func Launch(ctx context.Context, opts Options) (*IdP, error) {
	bin, err := build()
	if err != nil {
		return nil, err
	}
	ca, certFile, keyFile, err := writeCerts(opts.Dir)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(opts.Dir, "ca.crt")
	usersFile := filepath.Join(opts.Dir, "users.json")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeUsers(usersFile, opts.Users); err != nil {
		return nil, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	secret := "testidp-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p, err := proc.Start("testidp", opts.Dir, []string{"TESTIDP_CLIENT_SECRET=" + secret}, bin,
		"--address", addr, "--cert-file", certFile, "--key-file", keyFile, "--users-file", usersFile,
		"--client-id", opts.ClientID, "--redirect-uri", strings.Join(opts.RedirectURIs, ","))
	if err != nil {
		return nil, err
	}
	idp := &IdP{Issuer: "https://" + addr, ClientSecret: secret, CAFile: caFile, p: p}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = ca.Pool()
	idp.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := proc.WaitFor(wctx, p, "testidp", proc.HTTPReady(idp.Issuer+"/.well-known/openid-configuration")); err != nil {
		idp.Stop()
		return nil, err
	}
	return idp, nil
}

// Stop stops the IdP's process.
func (i *IdP) Stop() { i.p.Stop(5 * time.Second) }

// writeCerts makes the IdP's CA and serving certificate in dir.
func writeCerts(dir string) (ca *pki.CA, certFile, keyFile string, err error) {
	if ca, err = pki.NewCA("testidp CA"); err != nil {
		return nil, "", "", err
	}
	pair, err := ca.Server("127.0.0.1", "127.0.0.1", "localhost")
	if err != nil {
		return nil, "", "", err
	}
	certFile, keyFile, err = pair.Write(dir, "idp")
	return ca, certFile, keyFile, err
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
func (i *IdP) SetGroups(id string, groups []string) error {
	body, _ := json.Marshal(groups)
	return i.post("/admin/groups?user="+url.QueryEscape(id), body)
}

// Revoke makes the IdP refuse every refresh token of user id (invalid_grant).
func (i *IdP) Revoke(id string) error {
	return i.post("/admin/revoke?user="+url.QueryEscape(id), nil)
}

func (i *IdP) post(path string, body []byte) error {
	resp, err := i.Client.Post(i.Issuer+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("testidp %s: %s", path, resp.Status)
	}
	return nil
}
