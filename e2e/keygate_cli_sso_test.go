package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// cliSSOLogin runs `keygate login --sso` for user of the test IdP: "Log in with Test IdP" on
// the CLI's sign-in page, the IdP's form, back through the edge to the CLI. It returns the
// browser (its session cookie is the single sign-on session) and the CLI's plain key.
func cliSSOLogin(t *testing.T, ctx context.Context, c *keygateCLI, user string) (*http.Client, string) {
	t.Helper()
	login, authURL := startSSOLogin(t, ctx, c, filepath.Join(platform.Dir, "pki", "edge-ca.crt"))
	b := ssoBrowser(t)
	form := browseGet(t, b, authURL)
	m := regexp.MustCompile(`<a href="(/auth/` + localdev.SSOConnector + `/login\?authRequestID=[^"]+)">Log in with Test IdP</a>`).FindStringSubmatch(form.body)
	if m == nil {
		t.Fatalf("the login page at %s offers no link to the IdP:\n%s", form.resp.Request.URL, form.body)
	}
	back := idpLogin(t, b, browseGet(t, b, platform.EdgeURL+html.UnescapeString(m[1])), user)
	if u := back.resp.Request.URL; u.Path != "/callback" || back.resp.StatusCode != http.StatusOK || !strings.Contains(back.body, "logged in") {
		t.Fatalf("the browser ended at %s: %s\n%s; want the CLI's page saying it is logged in", u, back.resp.Status, back.body)
	}
	if err := login(); err != nil {
		t.Fatalf("keygate login --sso as %s: %v", user, err)
	}
	key := c.savedKey()
	c.keygate("", "use", "cluster", "demo")
	return b, key
}

// whoami is what cluster demo sees of the CLI's kubectl (through the exec plugin): the user and
// groups, or the error.
func (c *keygateCLI) whoami() (user string, groups []string, err error) {
	c.t.Helper()
	out, errOut, err := c.kubectl("auth", "whoami", "-o", "json")
	if err != nil {
		return "", nil, fmt.Errorf("%v: %s", err, errOut)
	}
	var who struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &who); err != nil {
		return "", nil, err
	}
	return who.Status.UserInfo.Username, who.Status.UserInfo.Groups, nil
}

// TestKeygateCLISSOWithTestIdP: a single sign-on identity logs in to the CLI through the IdP.
// The CLI's key is a child of the browser's session: kubectl through the exec plugin shows the
// IdP's groups, and a group change at the IdP reaches it with the session's refresh (due 30 s
// after the login); nobody binds a key to the session, nor unbinds the child, through the
// management API; revoking the user's tokens at the IdP disables the session and the CLI key.
func TestKeygateCLISSOWithTestIdP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name, user := "dave", localdev.SSOUsernamePrefix+"dave"
	noErr(t, platform.IdP.SetGroups(localdev.SSOSubject(name), []string{"cli-sso-a"}))
	c := newKeygateCLI(t)
	_, key := cliSSOLogin(t, ctx, c, name)
	if u, g, err := c.whoami(); err != nil || u != user || !slices.Contains(g, "cli-sso-a") {
		t.Fatalf("kubectl auth whoami after keygate login --sso: %s %v %v; want %s with the IdP's group cli-sso-a", u, g, err, user)
	}

	mgmt := kubeconfig(t, key)
	session, _, err := runKubectl(t, mgmt, management, "get", "ownedaccesskeys", "-o", "jsonpath={.items[?(@.spec.parent)].spec.parent}")
	child, _, _ := runKubectl(t, mgmt, management, "get", "ownedaccesskeys", "-o", "jsonpath={.items[?(@.spec.parent)].metadata.name}")
	if err != nil || session == "" || strings.Contains(session, " ") || child == "" {
		t.Fatalf("the CLI key should be the one child of the session: parent %q, child %q, %v", session, child, err)
	}
	manifest := filepath.Join(t.TempDir(), "bound.yaml")
	noErr(t, os.WriteFile(manifest, []byte("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+unique("bound")+
		"\nspec:\n  user: "+user+"\n  type: Login\n  ttl: 600\n  parent: "+session+"\n"), 0o600))
	if _, errOut, err := runKubectl(t, mgmt, management, "create", "-f", manifest); err == nil || !strings.Contains(errOut, "spec.parent: only keygate sets a key's parent") {
		t.Errorf("creating a key bound to the session: %v %s; want the refusal naming spec.parent", err, errOut)
	}
	if _, errOut, err := runKubectl(t, mgmt, management, "patch", "ownedaccesskeys", child, "--type", "merge", "-p", `{"spec":{"parent":null}}`); err == nil || !strings.Contains(errOut, "spec.parent: a key's parent is keygate's") {
		t.Errorf("unbinding the CLI key from its session: %v %s; want the refusal naming spec.parent", err, errOut)
	}

	noErr(t, platform.IdP.SetGroups(localdev.SSOSubject(name), []string{"cli-sso-b"}))
	eventually(t, 90*time.Second, "the IdP's new group in the CLI key", func() error {
		if u, g, err := c.whoami(); err != nil || !slices.Contains(g, "cli-sso-b") || slices.Contains(g, "cli-sso-a") {
			time.Sleep(time.Second)
			return fmt.Errorf("%s %v %v", u, g, err)
		}
		return nil
	})

	noErr(t, platform.IdP.Revoke(localdev.SSOSubject(name)))
	eventually(t, 90*time.Second, "the CLI key refused once the IdP revoked the user", func() error {
		if _, errOut, err := runKubectl(t, mgmt, management, "get", "ownedaccesskeys", child); err == nil {
			time.Sleep(time.Second)
			return errors.New("still allowed")
		} else if !strings.Contains(errOut, "Unauthorized") && !strings.Contains(errOut, "logged in") {
			return fmt.Errorf("%v %s", err, errOut)
		}
		return nil
	})
	if errOut := c.fails("", "list", "clusters"); !strings.Contains(errOut, "refused the saved key") {
		t.Errorf("keygate after the IdP's revocation: %s; want the edge's refusal of the saved key", errOut)
	}
}

// TestKeygateCLISSOSessionLogout: the CLI key of a single sign-on identity ends with the
// browser session it was made from: signing out there refuses it at once.
func TestKeygateCLISSOSessionLogout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newKeygateCLI(t)
	b, _ := cliSSOLogin(t, ctx, c, "erin")
	if u, _, err := c.whoami(); err != nil || u != localdev.SSOUsernamePrefix+"erin" {
		t.Fatalf("kubectl auth whoami after keygate login --sso: %s %v", u, err)
	}
	req, err := http.NewRequest(http.MethodPost, platform.EdgeURL+"/auth/logout", nil)
	noErr(t, err)
	req.Header.Set("Authorization", "Bearer "+sessionKey(t, b))
	if out := browse(t, b, req); out.resp.StatusCode != http.StatusOK {
		t.Fatalf("the session's logout: %s\n%s", out.resp.Status, out.body)
	}
	eventually(t, 10*time.Second, "the CLI key refused after the session's logout", func() error {
		if _, _, err := c.whoami(); err == nil {
			return errors.New("kubectl still works")
		}
		return nil
	})
	if errOut := c.fails("", "list", "clusters"); !strings.Contains(errOut, "refused the saved key") {
		t.Errorf("keygate after the session's logout: %s; want the edge's refusal of the saved key", errOut)
	}
}
