// Package redisserver runs a real redis-server on a free loopback port, for tests and
// `make run`.
package redisserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// Options configure a server.
type Options struct {
	// Dir holds the log and, with persistence, the data files. Required.
	Dir string
	// AppendOnly turns on AOF persistence with fsync on every write, so that a restart loses no
	// acknowledged write.
	AppendOnly bool
}

// Server is a running redis-server.
type Server struct {
	Addr string
	opts Options
	port int
	p    *proc.Process
}

// Start runs redis-server and waits until it answers PING.
func Start(ctx context.Context, opts Options) (*Server, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opts: opts, port: port}
	return s, s.start(ctx)
}

func (s *Server) start(ctx context.Context) error {
	bin, err := toolbin.Path("redis-server")
	if err != nil {
		return err
	}
	data := filepath.Join(s.opts.Dir, "redis-data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--dir", data, "--daemonize", "no"}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	s.p, err = proc.Start("redis", s.opts.Dir, nil, bin, args...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return proc.WaitFor(ctx, s.p, "redis-server on "+s.Addr, ping(s.Addr))
}

// Restart stops the server and starts it again on the same port with the same data directory.
func (s *Server) Restart(ctx context.Context) error {
	s.p.Stop(10 * time.Second)
	return s.start(ctx)
}

// Crash kills the server with SIGKILL, as an OOM kill or a power cut would (no shutdown, no
// final save or fsync), and starts it again on the same port with the same data directory.
// With AppendOnly, every write acknowledged before the kill is still there afterwards.
func (s *Server) Crash(ctx context.Context) error {
	_ = s.p.Signal(syscall.SIGKILL)
	select {
	case <-s.p.Exited():
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.start(ctx)
}

// Stop stops the server.
func (s *Server) Stop() {
	if s.p != nil {
		s.p.Stop(5 * time.Second)
	}
}

// ping speaks just enough RESP to ask a fresh server whether it is up, without pulling a client
// into this package.
func ping(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "+PONG\r\n" {
			return fmt.Errorf("redis answered %q to PING", buf[:n])
		}
		return nil
	}
}
