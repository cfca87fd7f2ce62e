package loginpage_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keygate-dev/keygate/internal/browsertest"
	"github.com/keygate-dev/keygate/keystore/auth/loginpage"
)

// TestBrowserSignIn signs in through the page in a real Chromium: the form, a wrong password
// (the error shows), the right one (the browser lands on the client's redirect URI, on another
// origin, past the page's CSP form-action 'self'). Screenshots are kept as artifacts.
func TestBrowserSignIn(t *testing.T) {
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

	ctx := browsertest.New(t, edge.Certificate(), client.Certificate())
	user, id := newUser(t), f.reqs.add("Argo CD")
	shots := browsertest.ArtifactDir(t, "loginpage")
	browsertest.Do(t, ctx, "open the page", chromedp.Navigate(edge.URL+"/auth/login?authRequestID="+url.QueryEscape(id)),
		chromedp.WaitVisible("#username"))
	if title := browsertest.Run(t, ctx, chromedp.Text("#title")); title != "Sign in to Argo CD" {
		t.Errorf("title %q", title)
	}
	browsertest.Do(t, ctx, "wrong password", chromedp.SendKeys("#username", user), chromedp.SendKeys("#password", "not the password"),
		chromedp.Click("#submit"), chromedp.WaitVisible("#error"))
	if msg := browsertest.Run(t, ctx, chromedp.Text("#error")); !strings.Contains(msg, "Wrong username or password") {
		t.Errorf("error shown: %q", msg)
	}
	browsertest.Screenshot(t, ctx, filepath.Join(shots, "1-wrong-password.png"))
	browsertest.Do(t, ctx, "right password", chromedp.SendKeys("#password", password), chromedp.Click("#submit"),
		chromedp.WaitVisible("#code"))
	browsertest.Screenshot(t, ctx, filepath.Join(shots, "2-back-at-the-client.png"))
	loc := browsertest.Run(t, ctx, chromedp.Location())
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
