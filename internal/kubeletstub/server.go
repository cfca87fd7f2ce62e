// Package kubeletstub stands in for the kubelets of the local platform's clusters: it serves the
// kubelet's streaming endpoints (exec, attach, port-forward, containerLogs) with the kubelet's own
// streaming library, k8s.io/cri-streaming, over a fake runtime (runtime.go). API servers reach it
// through a Node object whose address and kubelet port name it, exactly as they reach a kubelet,
// so kubectl exec, attach, port-forward, logs -f and cp work end to end without containers.
package kubeletstub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Config configures a stand-in.
type Config struct {
	// Addr is the listen address; "127.0.0.1:0" picks a free port.
	Addr string
	// Cert is the serving certificate, for the address the Node object names.
	Cert tls.Certificate
	// ClientCAs verify the API servers' client certificates (--kubelet-client-certificate); a
	// kubelet refuses anonymous callers, so the stand-in does too.
	ClientCAs *x509.CertPool
	// LogInterval is how often containerLogs writes a line while following; 0 means 200ms.
	LogInterval time.Duration
}

// Server is a running stand-in.
type Server struct {
	// Addr is where it listens (host:port); Port is the port for the Node's kubelet endpoint.
	Addr string
	Port int32
	// EchoAddr is the TCP echo server that every forwarded pod port connects to.
	EchoAddr string

	http     *http.Server
	echo     net.Listener
	logEvery time.Duration
	fs       *files
	mu       sync.Mutex
	sessions map[string]int
}

// Start listens on cfg.Addr and on a loopback port for the echo server, and serves both.
func Start(cfg Config) (*Server, error) {
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &Server{Addr: l.Addr().String(), Port: int32(l.Addr().(*net.TCPAddr).Port), EchoAddr: echo.Addr().String(),
		echo: echo, logEvery: cfg.LogInterval, fs: newFiles(), sessions: map[string]int{}}
	if s.logEvery == 0 {
		s.logEvery = 200 * time.Millisecond
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cfg.Cert}, ClientCAs: cfg.ClientCAs,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		// The library hijacks the connection and runs the session on the request's context,
		// which net/http cancels only when the handler returns: connContext cancels it when
		// the peer goes away, so a `sleep` ends with its session.
		ConnContext: connContext,
	}
	go func() { _ = s.http.ServeTLS(&closeNotifyingListener{l}, "", "") }()
	go serveEcho(echo)
	return s, nil
}

// Stop closes the listeners and every open session.
func (s *Server) Stop() {
	_ = s.http.Close()
	_ = s.echo.Close()
}

// Sessions is how many streaming requests (exec, attach, port-forward, logs) reached the
// stand-in for pod name in namespace: a refused request must never get here.
func (s *Server) Sessions(namespace, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[namespace+"/"+name]
}

func (s *Server) count(namespace, name string) {
	s.mu.Lock()
	s.sessions[namespace+"/"+name]++
	s.mu.Unlock()
}

// routes are the kubelet's streaming paths, as the API server calls them (pkg/kubelet/server).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	rt := &runtime{s: s}
	const idle, create = 4 * time.Hour, remotecommand.DefaultStreamCreationTimeout
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.count(r.PathValue("ns"), r.PathValue("pod"))
		remotecommand.ServeExec(w, r, rt, key(r), "", r.PathValue("container"), r.URL.Query()["command"],
			opts, idle, create, remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.count(r.PathValue("ns"), r.PathValue("pod"))
		remotecommand.ServeAttach(w, r, rt, key(r), "", r.PathValue("container"),
			opts, idle, create, remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/portForward/{ns}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		opts, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.count(r.PathValue("ns"), r.PathValue("pod"))
		portforward.ServePortForward(w, r, rt, key(r), "", opts, idle, create, portforward.SupportedProtocols)
	})
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.containerLogs)
	return mux
}

// key names a pod for the runtime: its namespace and name.
func key(r *http.Request) string { return r.PathValue("ns") + "/" + r.PathValue("pod") }

// containerLogs writes three lines, then, with follow=true, a line every LogInterval until the
// client goes away.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	s.count(r.PathValue("ns"), r.PathValue("pod"))
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	line := func(n int) bool {
		_, err := w.Write([]byte("log line " + strconv.Itoa(n) + " of " + key(r) + "/" + r.PathValue("container") + "\n"))
		if flusher != nil {
			flusher.Flush()
		}
		return err == nil
	}
	n := 1
	for ; n <= 3; n++ {
		line(n)
	}
	if r.URL.Query().Get("follow") != "true" {
		return
	}
	t := time.NewTicker(s.logEvery)
	defer t.Stop()
	for ; ; n++ {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			if !line(n) {
				return
			}
		}
	}
}

// serveEcho answers every connection with what it sends, until it half-closes.
func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

type connCtxKey struct{}

// closeNotifyingListener wraps each connection so that its context (connContext) ends when a
// read fails, i.e. when the peer closed it, hijacked or not.
type closeNotifyingListener struct{ net.Listener }

type notifyingConn struct {
	net.Conn
	once   sync.Once
	cancel context.CancelFunc
}

func (l *closeNotifyingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &notifyingConn{Conn: c}, nil
}

func (c *notifyingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) && c.cancel != nil {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *notifyingConn) Close() error {
	if c.cancel != nil {
		c.once.Do(c.cancel)
	}
	return c.Conn.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ctx
	}
	nc, ok := tc.NetConn().(*notifyingConn)
	if !ok {
		return ctx
	}
	ctx, nc.cancel = context.WithCancel(ctx)
	return ctx
}
