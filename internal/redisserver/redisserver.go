// Package redisserver runs a real redis-server on a free loopback port, for tests and
// `make run`: plaintext by default, or TLS only with client certificates and ACL users, as a
// production Redis should be reached.
package redisserver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate-dev/keygate/internal/pki"
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
	// TLS, when set, makes the server speak TLS only (--port 0, no plaintext port), with a
	// certificate for 127.0.0.1 and localhost from this CA, and only to clients that show a
	// certificate from it (tls-auth-clients yes).
	TLS *pki.CA
	// Users are ACL users, name → password, with every right. With any, the default user is
	// off, so that a client must log in as one of them.
	Users map[string]string
	// ReplicaOf, when set, makes the server a replica of the Redis at this address, logging in
	// to it as the (one) ACL user of Users, over TLS with Options.TLS.
	ReplicaOf string
	// Sentinel, when set, runs `redis-server --sentinel` watching that master instead of a data
	// node (Users then describe the master's user, not the Sentinel's: its default user stays on).
	Sentinel *SentinelOf
	// Cluster makes the server a Redis Cluster node (cluster-enabled, its bus on a port of its
	// own, over TLS with Options.TLS), not yet part of any cluster: StartCluster joins nodes.
	Cluster bool
}

// SentinelOf is the master a Sentinel watches.
type SentinelOf struct {
	// MasterName is what clients ask for (--redis-master-name); Master its first address.
	MasterName, Master string
	// Quorum is how many Sentinels must agree that the master is down.
	Quorum int
}

// Server is a running redis-server.
type Server struct {
	// Addr is the TLS port with Options.TLS, else the plaintext one.
	Addr string
	// CAFile is the CA's certificate, with Options.TLS: what a client's --redis-ca-file names.
	CAFile string
	opts   Options
	port   int
	bus    int // the cluster bus port, with Options.Cluster
	// cluster is the Cluster of TestMain's first node (ShapeEnv=cluster).
	cluster *Cluster
	// joined: the node is part of a cluster, so that a restart waits until it says the cluster
	// is ok, not just until it answers PING.
	joined bool
	conf   string   // the configuration file, holding the users
	tls    []string // the TLS arguments
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	// p is the running process, swapped by a restart while other goroutines may read it
	// (Running and Pid, from a test's sampler), hence atomic.
	p atomic.Pointer[proc.Process]
}

// Start runs redis-server and waits until it answers PING.
func Start(ctx context.Context, opts Options) (*Server, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opts: opts, port: port}
	if opts.Cluster {
		if s.bus, err = proc.FreePort(); err != nil {
			return nil, err
		}
	}
	var d net.Dialer
	s.dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if opts.TLS != nil {
		if err := s.setUpTLS(); err != nil {
			return nil, err
		}
	}
	return s, s.start(ctx)
}

// writeConfig writes the users into a configuration file, only the owner may read it: never on
// redis-server's command line, and only as SHA-256 digests (ACL's #<hex>).
func (s *Server) writeConfig() error {
	var conf strings.Builder
	names := make([]string, 0, len(s.opts.Users))
	for name := range s.opts.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		sum := sha256.Sum256([]byte(s.opts.Users[name]))
		fmt.Fprintf(&conf, "user %s on #%s ~* &* +@all\n", name, hex.EncodeToString(sum[:]))
	}
	if len(names) > 0 {
		// Off, so that no client logs in as it; with every right all the same, because Redis 7.0
		// replays the append-only file's MULTI/EXEC (every Lua script's writes) with the default
		// user's rights, and without them drops those writes on restart.
		conf.WriteString("user default off ~* &* +@all\n")
	}
	s.peerConfig(&conf, names)
	s.conf = filepath.Join(s.opts.Dir, "redis.conf")
	return os.WriteFile(s.conf, []byte(conf.String()), 0o600)
}

// peerConfig adds how a replica or a Sentinel logs in to its master: in the configuration
// file, like the users, so that no password is on a command line. A Sentinel keeps only these
// lines (it has no data users) and rewrites the file as it learns replicas and failovers.
func (s *Server) peerConfig(conf *strings.Builder, names []string) {
	var user, password string
	if len(names) > 0 {
		user, password = names[0], s.opts.Users[names[0]]
	}
	if o := s.opts.Sentinel; o != nil {
		conf.Reset()
		host, port, _ := net.SplitHostPort(o.Master)
		fmt.Fprintf(conf, "sentinel monitor %s %s %s %d\n", o.MasterName, host, port, o.Quorum)
		// Quick to decide, so that a test's failover takes seconds; production keeps the defaults
		// (30 s, 3 min) or its own.
		fmt.Fprintf(conf, "sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n", o.MasterName, o.MasterName)
		if user != "" {
			fmt.Fprintf(conf, "sentinel auth-user %s %s\nsentinel auth-pass %s %s\n", o.MasterName, user, o.MasterName, password)
		}
		return
	}
	if s.opts.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(s.opts.ReplicaOf)
		fmt.Fprintf(conf, "replicaof %s %s\n", host, port)
	}
	// A master too: restarted after a failover, the Sentinels make it a replica of the new
	// master, which it must then log in to.
	if user != "" {
		fmt.Fprintf(conf, "masteruser %s\nmasterauth %s\n", user, password)
	}
}

// setUpTLS issues the server's certificate, and a client certificate for the readiness PING,
// and writes them and the CA into Dir/tls.
func (s *Server) setUpTLS() error {
	dir := filepath.Join(s.opts.Dir, "tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(s.CAFile, s.opts.TLS.CertPEM, 0o644); err != nil {
		return err
	}
	server, err := s.opts.TLS.Server("redis", "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	certFile, keyFile, err := server.Write(dir, "redis")
	if err != nil {
		return err
	}
	// Replicas and Sentinels are clients of the master too: tls-auth-clients wants a client
	// certificate from them, and the serving one is for servers only (its key usage).
	peer, err := s.opts.TLS.Client("redis-peer")
	if err != nil {
		return err
	}
	peerCert, peerKey, err := peer.Write(dir, "redis-peer")
	if err != nil {
		return err
	}
	s.tls = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-client-cert-file", peerCert, "--tls-client-key-file", peerKey,
		"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "yes", "--tls-replication", "yes"}
	if s.opts.Cluster {
		s.tls = append(s.tls, "--tls-cluster", "yes")
	}
	pinger, err := s.opts.TLS.Client("redisserver-readiness")
	if err != nil {
		return err
	}
	cert, err := pinger.TLS()
	if err != nil {
		return err
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: s.opts.TLS.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	s.dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	return nil
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
	// The configuration file comes first: redis-server reads it only there.
	args := []string{s.conf, "--bind", "127.0.0.1", "--daemonize", "no"}
	if s.opts.Sentinel != nil {
		args = append(args, "--sentinel")
	} else {
		args = append(args, "--save", "", "--dir", data)
	}
	if s.opts.Cluster {
		args = append(args, s.clusterArgs()...)
	}
	if s.tls != nil {
		args = append(args, s.tls...)
	} else {
		args = append(args, "--port", strconv.Itoa(s.port))
	}
	switch {
	case s.opts.Sentinel != nil:
	case s.opts.AppendOnly:
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	default:
		args = append(args, "--appendonly", "no")
	}
	q, err := proc.Start("redis", s.opts.Dir, nil, bin, args...)
	if err != nil {
		return err
	}
	s.p.Store(q)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ready := s.ping()
	if s.joined {
		ready = func(ctx context.Context) error {
			if err := s.ping()(ctx); err != nil {
				return err
			}
			info, err := s.CLI(ctx, "CLUSTER", "INFO")
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = errors.New("the node rejoined, its cluster not ok yet")
			}
			return err
		}
	}
	return proc.WaitFor(ctx, q, "redis-server on "+s.Addr, ready)
}

// Restart stops the server and starts it again on the same port with the same data directory.
func (s *Server) Restart(ctx context.Context) error {
	s.p.Load().Stop(10 * time.Second)
	return s.start(ctx)
}

// RestartEmpty stops the server, deletes its data and starts it again on the same port: to its
// clients, a Redis without persistence that restarted, or a failover to a replica that had
// nothing yet.
func (s *Server) RestartEmpty(ctx context.Context) error {
	s.p.Load().Stop(10 * time.Second)
	if err := os.RemoveAll(filepath.Join(s.opts.Dir, "redis-data")); err != nil {
		return err
	}
	return s.start(ctx)
}

// Crash kills the server with SIGKILL, as an OOM kill or a power cut would (no shutdown, no
// final save or fsync), and starts it again on the same port with the same data directory.
// With AppendOnly, every write acknowledged before the kill is still there afterwards.
func (s *Server) Crash(ctx context.Context) error {
	q := s.p.Load()
	_ = q.Signal(syscall.SIGKILL)
	select {
	case <-q.Exited():
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.start(ctx)
}

// Kill kills the server with SIGKILL and leaves it down, as a lost machine would be.
func (s *Server) Kill(ctx context.Context) error {
	q := s.p.Load()
	_ = q.Signal(syscall.SIGKILL)
	select {
	case <-q.Exited():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Freeze stops the server with SIGSTOP, as a stalled machine or a partitioned link would: it
// answers nothing and, as a replica, cannot reconnect to its master until Thaw.
func (s *Server) Freeze() error { return s.p.Load().Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() error { return s.p.Load().Signal(syscall.SIGCONT) }

// Running says whether the server's process runs (it may be frozen).
func (s *Server) Running() bool {
	q := s.p.Load()
	if q == nil {
		return false
	}
	select {
	case <-q.Exited():
		return false
	default:
		return true
	}
}

// Pid is the process id of the running server (0 before it started).
func (s *Server) Pid() int {
	if q := s.p.Load(); q != nil {
		return q.Pid()
	}
	return 0
}

// Stop stops the server.
func (s *Server) Stop() {
	if q := s.p.Load(); q != nil {
		q.Stop(5 * time.Second)
	}
}

// ping speaks just enough RESP to ask a fresh server whether it is up and has loaded its data,
// without pulling a client into this package: PING, after logging in as one of the ACL users if
// there are any (else Redis answers NOAUTH before it says it is still LOADING).
func (s *Server) ping() func(context.Context) error {
	var login string
	for name, password := range s.opts.Users {
		if s.opts.Sentinel != nil {
			break // a Sentinel's default user is on; Users are the master's
		}
		login = fmt.Sprintf("*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(name), name, len(password), password)
		break
	}
	return func(ctx context.Context) error {
		c, err := s.dial(ctx, s.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte(login + "PING\r\n")); err != nil {
			return err
		}
		r := bufio.NewReader(c)
		if login != "" {
			if a, err := r.ReadString('\n'); err != nil || a != "+OK\r\n" {
				return fmt.Errorf("redis answered %q, %v to AUTH", a, err)
			}
		}
		if a, err := r.ReadString('\n'); err != nil || a != "+PONG\r\n" {
			return fmt.Errorf("redis answered %q, %v to PING", a, err)
		}
		return nil
	}
}
