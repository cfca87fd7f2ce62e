package user

import (
	"context"
	"net"
	"net/http"
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
