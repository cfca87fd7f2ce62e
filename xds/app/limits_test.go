package app

import (
	"bufio"
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// limitTimeout is the platform's --request-headers-timeout and --stream-idle-timeout.
const limitTimeout = 2 * time.Second

// A request that stays idle longer than the stream idle timeout is cut on a public route, but
// not on a Kubernetes route: a watch with no events lasts as long as its client wants.
func TestStreamIdleTimeout(t *testing.T) {
	idle := (2 * limitTimeout).String()
	watch := edge.get(t, "/kubernetes/cluster/demo/api/v1/pods?watch=1&sleep="+idle, nil)
	if watch.status != http.StatusOK || watch.echoed(t).Upstream != "demo" {
		t.Errorf("a watch idle for %s: HTTP %d %s, want the upstream's 200", idle, watch.status, watch.body)
	}
	login := edge.get(t, "/auth/password/login?sleep="+idle, nil)
	if login.status == http.StatusOK || !strings.Contains(string(login.body), "timeout") {
		t.Errorf("a public request idle for %s: HTTP %d %s, want Envoy's stream timeout", idle, login.status, login.body)
	}
}

// A client that sends its headers a byte at a time (slowloris) is cut off once the request
// header timeout passes, long before it would finish.
func TestSlowHeadersAreCutOff(t *testing.T) {
	u, err := url.Parse(edge.edgeURL)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := edge.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", u.Host, tlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			line += " (" + err.Error() + ")"
		}
		closed <- line
	}()
	if _, err := conn.Write([]byte("GET /kubernetes/cluster/demo/api HTTP/1.1\r\nHost: edge\r\n")); err != nil {
		t.Fatal(err)
	}
	// Ten times the timeout's worth of trickle: a header that never ends.
	trickle := strings.Repeat("x", int(10*limitTimeout/(100*time.Millisecond)))
	for i := 0; i < len(trickle); i++ {
		select {
		case got := <-closed:
			t.Logf("cut off after %d header bytes: %q", i, strings.TrimSpace(got))
			return
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{trickle[i]}); err != nil {
			t.Logf("cut off after %d header bytes: %v", i, err)
			return
		}
	}
	t.Fatalf("a client sending its headers a byte at a time was still connected after %s", 10*limitTimeout)
}
