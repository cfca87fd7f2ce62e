package user

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWaitForCode: the loopback listener trades only the code of a redirect with its state;
// another page's redirect is refused and the CLI keeps waiting.
func TestWaitForCode(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	traded := make(chan string, 2)
	done := make(chan error, 1)
	go func() {
		done <- waitForCode(ctx, lis, "the-state", func(code string) error { traded <- code; return nil })
	}()
	base := "http://" + lis.Addr().String() + "/callback"
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?code=stolen&state=other", http.StatusBadRequest},
		{"?code=stolen", http.StatusBadRequest},
		{"?code=good&state=the-state", http.StatusOK},
	} {
		resp, err := http.Get(base + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.query, resp.StatusCode, tc.want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-traded; got != "good" || len(traded) != 0 {
		t.Errorf("traded %q (and %d more), want only the code with the state", got, len(traded))
	}
}

// The browser always gets the page saying the login is done: the CLI returns as soon as the
// code is traded, and used to close its server before the handler had sent the answer (the
// browser saw the connection closed, EOF, now and then).
func TestWaitForCodeAnswersTheBrowserBeforeItReturns(t *testing.T) {
	for i := range 200 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- waitForCode(context.Background(), lis, "s", func(string) error { return nil })
		}()
		resp, err := http.Get("http://" + lis.Addr().String() + "/callback?code=c&state=s")
		if err != nil {
			t.Fatalf("login %d: the browser got no answer: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "logged in") {
			t.Fatalf("login %d: %d %q %v, want 200 and the page saying so", i, resp.StatusCode, body, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
