package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/keygate-dev/keygate/localdev"
)

// session is one exec of `cat` in the demo pod with stdin: what is written comes back on stdout.
type session struct {
	stdin  *io.PipeWriter
	stdout *io.PipeReader
	done   chan error // the executor's result, once the session ends
	buf    [1]byte
}

// openSession starts `cat` in the demo pod through t with transport, as `kubectl exec -i` does,
// and returns once one checked echo has come back, with the time that took (session setup).
func openSession(ctx context.Context, t target, transport string) (*session, time.Duration, error) {
	u, err := podURL(t, "exec", &corev1.PodExecOptions{Container: localdev.DemoContainer,
		Command: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, 0, err
	}
	var ex remotecommand.Executor
	if transport == transportWS {
		ex, err = remotecommand.NewWebSocketExecutor(t.cfg, http.MethodGet, u.String())
	} else {
		ex, err = remotecommand.NewSPDYExecutor(t.cfg, http.MethodPost, u)
	}
	if err != nil {
		return nil, 0, err
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{stdin: inW, stdout: outR, done: make(chan error, 1)}
	start := time.Now()
	go func() {
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Stderr: io.Discard})
		outW.CloseWithError(fmt.Errorf("session ended: %v", err))
		s.done <- err
	}()
	if _, err := s.echo(0x5a); err != nil {
		s.close()
		return nil, 0, fmt.Errorf("exec via %s (%s): first echo: %w", t.name, transport, err)
	}
	return s, time.Since(start), nil
}

// echo writes one byte and waits for it to come back, checking it, and returns the round trip.
func (s *session) echo(b byte) (time.Duration, error) {
	start := time.Now()
	s.buf[0] = b
	if _, err := s.stdin.Write(s.buf[:]); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(s.stdout, s.buf[:]); err != nil {
		return 0, err
	}
	rtt := time.Since(start)
	if s.buf[0] != b {
		return 0, fmt.Errorf("echo: sent %#x, got %#x", b, s.buf[0])
	}
	return rtt, nil
}

// close ends stdin, so `cat` exits 0 and the session ends as a user's would; it reports the
// session's error, if any, or that it did not end within 30 s.
func (s *session) close() error {
	s.stdin.Close()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("exec session did not end 30s after stdin closed")
	}
}

// echoes runs n checked 1-byte echoes on s and appends their round trips to rtts.
func (s *session) echoes(n int, rtts []time.Duration) ([]time.Duration, error) {
	for i := range n {
		rtt, err := s.echo(byte(i))
		if err != nil {
			return rtts, err
		}
		rtts = append(rtts, rtt)
	}
	return rtts, nil
}
