package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// The transports, as kubectl picks them: WebSocket is its default since Kubernetes 1.31 (SPDY
// tunnelled over a WebSocket for port-forward), SPDY the older upgrade.
const (
	transportWS   = "WebSocket"
	transportSPDY = "SPDY"
)

var transports = []string{transportWS, transportSPDY}

// forward runs a client-go port forwarder from a free loopback port to the demo pod's port 7,
// as `kubectl port-forward` does, and returns the local address and a stop function.
func forward(t target, transport string) (string, func(), error) {
	u, err := podURL(t, "portforward", nil)
	if err != nil {
		return "", nil, err
	}
	var dialer httpstream.Dialer
	if transport == transportWS {
		dialer, err = portforward.NewSPDYOverWebsocketDialer(u, t.cfg)
	} else {
		var rt http.RoundTripper
		var up spdy.Upgrader
		if rt, up, err = spdy.RoundTripperFor(t.cfg); err == nil {
			dialer = spdy.NewDialer(up, &http.Client{Transport: rt}, http.MethodPost, u)
		}
	}
	if err != nil {
		return "", nil, err
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:7"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		return "", nil, fmt.Errorf("port-forward via %s (%s): %w", t.name, transport, err)
	case <-time.After(30 * time.Second):
		close(stop)
		return "", nil, fmt.Errorf("port-forward via %s (%s): not ready after 30s", t.name, transport)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward ports: %v %v", ports, err)
	}
	stopFn := func() { close(stop); <-done }
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))), stopFn, nil
}

// transfer sends data through one new connection to addr, an echo server or a forwarded port,
// and reads it back while sending, checking every byte. It returns the time from the first byte
// sent to the last byte back, after a small checked exchange that opens the stream (for a
// forwarded port, the stream to the pod is created on the connection's first bytes).
func transfer(addr string, data []byte) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
	if err := echoCheck(conn, data[:1024]); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		sent <- err
	}()
	if err := readCheck(conn, data); err != nil {
		return 0, err
	}
	if err := <-sent; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// echoCheck writes b and checks that exactly b comes back.
func echoCheck(rw io.ReadWriter, b []byte) error {
	if _, err := rw.Write(b); err != nil {
		return err
	}
	return readCheck(rw, b)
}

// readCheck reads len(want) bytes and fails at the first one that differs from want.
func readCheck(r io.Reader, want []byte) error {
	buf := make([]byte, 256<<10)
	for off := 0; off < len(want); {
		n, err := r.Read(buf[:min(len(buf), len(want)-off)])
		if n > 0 && !bytes.Equal(buf[:n], want[off:off+n]) {
			return fmt.Errorf("wrong bytes back at offset %d", off+firstDiff(buf[:n], want[off:off+n]))
		}
		off += n
		if err != nil && off < len(want) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("after %d of %d bytes back: %w", off, len(want), err)
		}
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
