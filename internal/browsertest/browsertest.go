// Package browsertest drives a real headless Chromium (Debian's package, installed into .tools
// by `make tools`) with chromedp, for the tests of the login page: the page's own test and the
// end-to-end one through Envoy. It starts the browser with an empty profile that trusts only
// the certificates the test names, and keeps screenshots as test artifacts.
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

// flags make a headless browser that talks to nothing but the test's servers.
var flags = []string{"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// New starts Chromium trusting only certs (by their public keys: the flag
// --ignore-certificate-errors-spki-list, so no CA is installed anywhere), and returns a tab's
// context, good for a minute; t's cleanup stops the browser. A machine without Chromium fails
// the test with how to install it.
func New(t testing.TB, certs ...*x509.Certificate) context.Context {
	t.Helper()
	bin, err := toolbin.Path("chromium")
	if err != nil {
		t.Fatalf("this test drives a real Chromium: `make tools` installs it (Debian's package: apt-get install -y chromium): %v", err)
	}
	var spki []string
	for _, c := range certs {
		spki = append(spki, SPKIHash(c))
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")), chromedp.WindowSize(800, 700)}
	for _, fl := range flags {
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

// SPKIHash is the base64 SHA-256 of c's public key, as Chromium's SPKI list wants it.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Do runs actions as step, failing the test with the page's HTML when one fails.
func Do(t testing.TB, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML("html"))
		t.Fatalf("%s: %v\npage now:\n%s", step, err, html)
	}
}

// Run runs a and returns its value, failing the test on an error.
func Run[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var logOnce sync.Map

// ArtifactDir is where screenshots go: $KEYGATE_TEST_ARTIFACTS/name (CI keeps it), else the
// test's artifact directory (kept with go test -artifacts -outputdir DIR).
func ArtifactDir(t *testing.T, name string) string {
	t.Helper()
	dir := t.ArtifactDir()
	if root := os.Getenv("KEYGATE_TEST_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, seen := logOnce.LoadOrStore(dir, true); !seen {
		t.Logf("screenshots in %s", dir)
	}
	return dir
}

// Screenshot saves the whole page as a PNG at path.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	png := Run(t, ctx, chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}
