package loginpage_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
)

// chromiumFlags are the flags the brief of this test names: a headless browser that talks to
// nothing but the test's servers.
var chromiumFlags = []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// TestBrowserSignIn signs in through the page in a real Chromium: the form, a wrong password
// (the error shows), the right one (the browser lands on the client's redirect URI, on another
// origin, past the page's CSP form-action 'self'). Screenshots are kept as artifacts.
func TestBrowserSignIn(t *testing.T) {
	bin, err := toolbin.Path("chromium")
	if err != nil {
		t.Fatalf("this test drives a real Chromium: `make tools` installs it (Debian's package: apt-get install -y chromium): %v", err)
	}
	codes := make(chan string, 1)
	client := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query().Get("code")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>client</title><p id=code>client got %s</p>", r.URL.Query().Get("code"))
	}))
	defer client.Close()
	f := newFixture(t, nil)
	f.reqs.redirect = client.URL + "/callback"
	// As the edge serves it: /auth/ stripped before the handler.
	edge := httptest.NewTLSServer(http.StripPrefix(loginpage.Prefix, f.h))
	defer edge.Close()

	ctx := newBrowser(t, bin, edge, client)
	user, id := newUser(t), f.reqs.add("Argo CD")
	shots := artifactDir(t)
	do(t, ctx, "open the page", chromedp.Navigate(edge.URL+"/auth/login?authRequestID="+url.QueryEscape(id)),
		chromedp.WaitVisible("#username"))
	if title := run(t, ctx, chromedp.Text("#title")); title != "Sign in to Argo CD" {
		t.Errorf("title %q", title)
	}
	do(t, ctx, "wrong password", chromedp.SendKeys("#username", user), chromedp.SendKeys("#password", "not the password"),
		chromedp.Click("#submit"), chromedp.WaitVisible("#error"))
	if msg := run(t, ctx, chromedp.Text("#error")); !strings.Contains(msg, "Wrong username or password") {
		t.Errorf("error shown: %q", msg)
	}
	screenshot(t, ctx, filepath.Join(shots, "1-wrong-password.png"))
	do(t, ctx, "right password", chromedp.SendKeys("#password", password), chromedp.Click("#submit"),
		chromedp.WaitVisible("#code"))
	screenshot(t, ctx, filepath.Join(shots, "2-back-at-the-client.png"))
	loc := run(t, ctx, chromedp.Location())
	if !strings.HasPrefix(loc, client.URL+"/callback?code=code-"+id) {
		t.Errorf("the browser is at %s, want the client's redirect URI", loc)
	}
	select {
	case code := <-codes:
		if code != "code-"+id || f.reqs.completedBy(id) != user {
			t.Errorf("client got code %q, request completed by %q", code, f.reqs.completedBy(id))
		}
	default:
		t.Error("the client was never called")
	}
}

// newBrowser starts Chromium with an empty profile, trusting only the two servers'
// certificates (by their public keys), and returns a tab's context.
func newBrowser(t *testing.T, bin string, servers ...*httptest.Server) context.Context {
	t.Helper()
	var spki []string
	for _, s := range servers {
		spki = append(spki, spkiHash(s.Certificate()))
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")), chromedp.WindowSize(800, 700)}
	for _, fl := range chromiumFlags {
		opts = append(opts, chromedp.Flag(fl, true))
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelB)
	ctx, cancelC := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelC)
	return ctx
}

func spkiHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML("html"))
		t.Fatalf("%s: %v\npage now:\n%s", step, err, html)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var artifactsOnce sync.Once

// artifactDir is where screenshots go: $KEYGATE_TEST_ARTIFACTS/loginpage (CI keeps it), else
// the test's artifact directory (kept with go test -artifacts -outputdir DIR).
func artifactDir(t *testing.T) string {
	dir := t.ArtifactDir()
	if root := os.Getenv("KEYGATE_TEST_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, "loginpage")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	artifactsOnce.Do(func() { t.Logf("screenshots in %s", dir) })
	return dir
}

func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png := run(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}
