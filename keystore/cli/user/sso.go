package user

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"time"
)

// The browser login, as kubelogin does it (RFC 8252): the CLI listens on a loopback port,
// sends the browser to the edge's OIDC provider as its built-in public client keygate-cli with
// PKCE, gets the code back on that port, and trades code and verifier at POST /auth/oidc/login
// for a Login key. The key never sits in a URL; the code alone is worth nothing without the
// verifier, which never leaves this process.

const (
	cliClientID = "keygate-cli"
	// ssoWait is how long the CLI waits for the browser: the provider's sign-in request lives
	// ten minutes.
	ssoWait = 10 * time.Minute
)

// loginWithSSO runs the browser login and fills l with the Login key.
func (o *options) loginWithSSO(ctx context.Context, l *Login, openBrowser bool) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on a loopback port for the browser's redirect: %w", err)
	}
	defer lis.Close()
	redirect := fmt.Sprintf("http://%s/callback", lis.Addr())
	verifier, state := randomString(), randomString()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {cliClientID}, "response_type": {"code"}, "scope": {"openid profile"},
		"redirect_uri": {redirect}, "state": {state},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	authURL := l.Server + "/oidc/authorize?" + q.Encode()
	fmt.Fprintf(o.err, "Open this URL in your browser to sign in:\n\n    %s\n\n", authURL)
	if openBrowser {
		startBrowser(authURL)
	}
	e, err := newEdge(l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ssoWait)
	defer cancel()
	return waitForCode(ctx, lis, state, func(code string) error {
		return trade(ctx, e, l, code, verifier, redirect)
	})
}

// waitForCode serves the loopback redirect until one with the right state arrives, and answers
// the browser with what trading its code gave.
func waitForCode(ctx context.Context, lis net.Listener, state string, trade func(code string) error) error {
	done := make(chan error, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		// Another page may send the browser here: only the request this CLI started counts.
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			browserPage(w, http.StatusBadRequest, "This is not the sign-in keygate login started; go back to the terminal.")
			return
		}
		var err error
		if e := q.Get("error"); e != "" {
			err = fmt.Errorf("the sign-in failed: %s %s", e, q.Get("error_description"))
		} else {
			err = trade(q.Get("code"))
		}
		if err != nil {
			browserPage(w, http.StatusUnauthorized, "Sign-in failed: "+err.Error())
		} else {
			browserPage(w, http.StatusOK, "You are logged in to keygate. You may close this tab and go back to the terminal.")
		}
		select {
		case done <- err:
		default:
		}
	})}
	go srv.Serve(lis)
	// Shutdown, not Close: the handler sends done before its answer reaches the browser, and a
	// Close then could cut that connection (the browser saw EOF, not the page).
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errors.New("no sign-in arrived from the browser in time; run keygate login again")
	}
}

// trade sends the code and its verifier to the edge, which answers a Login key.
func trade(ctx context.Context, e *edge, l *Login, code, verifier, redirect string) error {
	var resp struct {
		AccessKey, Name, User string
		ExpiresAt             *time.Time
	}
	body := map[string]string{"code": code, "codeVerifier": verifier, "redirectUri": redirect}
	if err := e.do(ctx, "POST", "/auth/oidc/login", body, &resp); err != nil {
		var st *statusError
		if errors.As(err, &st) && st.code == http.StatusUnauthorized {
			return fmt.Errorf("the edge refused the sign-in: %s", st.said)
		}
		return fmt.Errorf("login: %w", err)
	}
	l.AccessKey, l.AccessKeyName, l.User, l.ExpiresAt, l.LoginKey = resp.AccessKey, resp.Name, resp.User, resp.ExpiresAt, true
	return nil
}

func browserPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><title>keygate login</title><p>%s</p>\n", html.EscapeString(msg))
}

// startBrowser opens u in the desktop's browser if it can; the URL is printed anyway.
func startBrowser(u string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return
	}
	cmd := exec.Command(path, u)
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}

// randomString is 256 bits from crypto/rand, base64url: a PKCE verifier (43 characters, RFC
// 7636 §4.1) or a state.
func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
