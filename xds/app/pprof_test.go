package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/ops"
)

// --pprof-address serves Go's profiles: the index, and a heap profile that go tool pprof reads.
func TestPprofHandler(t *testing.T) {
	srv := httptest.NewServer(ops.PprofHandler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "heap",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: HTTP %d, want 200 with %q: %.200s", path, resp.StatusCode, want, body)
		}
	}
	if resp, err := http.Get(srv.URL + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the pprof address: %v %v, want 404 (profiles only)", resp, err)
	}
}

// The profiles are served from before the sources load (start-up can be profiled), so a taken
// port is a start-up error.
func TestPprofPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = Run(context.Background(), []string{"--targets-file", "testdata/none.yaml",
		"--tls-cert-file", "../translate/testdata/pki/serving.crt", "--tls-key-file", "../translate/testdata/pki/serving.key",
		"--grpc-insecure-loopback", // the other ports are never listened on: pprof comes first
		"--pprof-address", l.Addr().String()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--pprof-address: listen on "+l.Addr().String()) {
		t.Errorf("Run error = %v, want --pprof-address's listen error", err)
	}
}
