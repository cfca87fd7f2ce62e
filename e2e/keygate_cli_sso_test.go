package e2e

import (
	"bufio"
	"context"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/config"
	"github.com/keygate-dev/keygate/localdev"
)

// TestKeygateCLISSO: `keygate login URL --sso --no-browser` prints the provider's authorize
// URL; a browser (a cookie-keeping HTTP client) opens it through the real Envoy, signs in on
// the login page and is sent to the CLI's loopback listener, which trades the code at
// /auth/oidc/login. The CLI then works as after a password login, and the kubeconfig never
// holds the key.
func TestKeygateCLISSO(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := unique("clisso")
	group := name + "-readers"
	keystoreCmd(t, oidcPassword+"\n", "create-user", name, "--password-stdin", "--bcrypt-cost", "4", "--groups", group)
	if err := platform.GrantView(ctx, group); err != nil {
		t.Fatal(err)
	}
	c := newKeygateCLI(t)
	ca := filepath.Join(platform.Dir, "pki", "edge-ca.crt")
	login, authURL := startSSOLogin(t, ctx, c, ca)

	b := newBrowser(t)
	form := browseGet(t, b, authURL)
	if u := form.resp.Request.URL; u.Path != "/auth/login" || u.Query().Get("authRequestID") == "" {
		t.Fatalf("the printed URL led the browser to %s, want the login page with the request", u)
	}
	back := followContinue(t, b, postLogin(t, b, form, name, oidcPassword))
	if u := back.resp.Request.URL; u.Hostname() != "127.0.0.1" || u.Path != "/callback" || back.resp.StatusCode != 200 || !strings.Contains(back.body, "logged in") {
		t.Fatalf("the browser ended at %s: %s\n%s; want the CLI's page saying it is logged in", u, back.resp.Status, back.body)
	}
	if u := back.resp.Request.URL; strings.Contains(u.RawQuery, "kgk_") {
		t.Errorf("a key in the redirect URL: %s", u)
	}
	if err := login(); err != nil {
		t.Fatalf("keygate login --sso: %v", err)
	}

	if out := c.keygate("", "list", "clusters"); !strings.Contains(out, "demo") {
		t.Errorf("list clusters after the browser login:\n%s", out)
	}
	c.keygate("", "use", "cluster", "demo")
	if out, errOut, err := c.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != name {
		t.Fatalf("kubectl auth whoami on loft_demo: %q, %v\n%s", out, err, errOut)
	}
	kc, _ := os.ReadFile(c.kubeconfig)
	saved, _ := os.ReadFile(c.config)
	if strings.Contains(string(kc), "kgk_") || !strings.Contains(string(saved), "kgk_") {
		t.Errorf("the key must be in the 0600 config, never the kubeconfig:\n%s", kc)
	}
	c.keygate("", "logout")
}

// startSSOLogin starts `keygate login --sso --no-browser` and returns the URL it prints, and a
// function waiting for it to end (its error holds what it wrote).
func startSSOLogin(t *testing.T, ctx context.Context, c *keygateCLI, ca string) (wait func() error, authURL string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(platform.Bin, "keygate"), "login", platform.EdgeURL, "--sso", "--no-browser", "--certificate-authority", ca)
	cmd.Env = append(os.Environ(), "KEYGATE_CONFIG="+c.config, "KUBECONFIG="+c.kubeconfig)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var seen strings.Builder
	r := bufio.NewReader(stderr)
	for authURL == "" {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if err != nil {
			t.Fatalf("keygate login --sso printed no URL: %v\n%s", err, seen.String())
		}
		if u := strings.TrimSpace(line); strings.HasPrefix(u, platform.EdgeURL+"/oidc/authorize?") {
			authURL = u
		}
	}
	if !strings.Contains(authURL, "client_id="+config.CLIClientID) {
		t.Errorf("authorize URL %s: want the built-in client %s", authURL, config.CLIClientID)
	}
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); rest <- string(b) }()
	return func() error {
		out := <-rest // all of stderr, before Wait closes the pipe
		err := cmd.Wait()
		if err != nil {
			t.Logf("keygate login --sso wrote:\n%s%s", seen.String(), out)
		}
		return err
	}, authURL
}

// TestKeygateCLISSOWithTestIdP: "Log in with Test IdP" on the CLI's sign-in page reaches the
// CLI with a code, and the edge refuses it, saying what to do: a single sign-on identity's
// groups follow its identity provider through its browser session key, which a CLI key would
// not (keystore/README.md, "keygate login URL --sso").
func TestKeygateCLISSOWithTestIdP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newKeygateCLI(t)
	login, authURL := startSSOLogin(t, ctx, c, filepath.Join(platform.Dir, "pki", "edge-ca.crt"))
	b := ssoBrowser(t)
	form := browseGet(t, b, authURL)
	m := regexp.MustCompile(`<a href="(/auth/` + localdev.SSOConnector + `/login\?authRequestID=[^"]+)">Log in with Test IdP</a>`).FindStringSubmatch(form.body)
	if m == nil {
		t.Fatalf("the login page at %s offers no link to the IdP:\n%s", form.resp.Request.URL, form.body)
	}
	back := idpLogin(t, b, browseGet(t, b, platform.EdgeURL+html.UnescapeString(m[1])), "carol")
	if u := back.resp.Request.URL; u.Path != "/callback" || !strings.Contains(back.body, "single sign-on identities cannot log in to the CLI") {
		t.Errorf("the browser ended at %s: %s\n%s; want the CLI's page with the edge's reason", u, back.resp.Status, back.body)
	}
	if err := login(); err == nil {
		t.Error("keygate login --sso succeeded for a single sign-on identity")
	}
	if saved, _ := os.ReadFile(c.config); strings.Contains(string(saved), "kgk_") {
		t.Error("a key was saved after the refusal")
	}
}
