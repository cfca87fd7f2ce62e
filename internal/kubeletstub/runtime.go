package kubeletstub

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// runtime is the fake container runtime: no containers, a fixed set of harmless commands
// (command), the pod's files in memory for kubectl cp (files.go), and every port forwarded to
// the echo server.
type runtime struct{ s *Server }

// proc is one running command: its streams, the pod it runs in, and the terminal's size.
type proc struct {
	ctx     context.Context
	pod     string
	in      io.Reader
	out     io.Writer
	errOut  io.Writer
	tty     bool
	fs      *files
	mu      sync.Mutex
	rows    uint16
	columns uint16
}

func (r *runtime) newProc(ctx context.Context, pod string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) *proc {
	p := &proc{ctx: ctx, pod: pod, in: in, out: discardIfNil(out), errOut: discardIfNil(errOut), tty: tty, fs: r.s.fs, rows: 24, columns: 80}
	if tty {
		// With a terminal, stderr is stdout, as on a real one.
		p.errOut = p.out
	}
	if in == nil {
		p.in = eofReader{}
	}
	go func() {
		for size := range resize {
			p.mu.Lock()
			p.rows, p.columns = size.Height, size.Width
			p.mu.Unlock()
		}
	}()
	return p
}

func discardIfNil(w io.WriteCloser) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// ExecInContainer runs cmd; a non-zero exit is reported as the library's exit error, which
// kubectl turns into its own exit code.
func (r *runtime) ExecInContainer(ctx context.Context, pod, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return exitError(r.newProc(ctx, pod, in, out, errOut, tty, resize).run(cmd))
}

// AttachContainer attaches to the container's main process, a shell: what the user types runs.
func (r *runtime) AttachContainer(ctx context.Context, pod, _, _ string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return exitError(r.newProc(ctx, pod, in, out, errOut, tty, resize).shell())
}

// PortForward connects the stream to the echo server, whatever the port.
func (r *runtime) PortForward(ctx context.Context, _, _ string, _ int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.s.EchoAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, stream)
		_ = c.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, err = io.Copy(stream, c)
	<-done
	return err
}

func exitError(code int) error {
	if code == 0 {
		return nil
	}
	return utilexec.CodeExitError{Err: fmt.Errorf("command exited with %d", code), Code: code}
}

// run runs one command line and returns its exit code.
func (p *proc) run(argv []string) int {
	if len(argv) == 0 {
		return 0
	}
	args := argv[1:]
	switch argv[0] {
	case "sh", "bash", "/bin/sh", "/bin/bash":
		if len(args) >= 2 && args[0] == "-c" {
			return p.line(args[1])
		}
		return p.shell()
	case "echo":
		fmt.Fprintln(p.out, strings.Join(args, " "))
	case "cat":
		_, _ = io.Copy(p.out, p.in)
	case "env":
		fmt.Fprintf(p.out, "HOSTNAME=%s\nPATH=/usr/local/bin:/usr/bin:/bin\nKUBELET=keygate-kubeletstub\n", p.hostname())
	case "hostname":
		fmt.Fprintln(p.out, p.hostname())
	case "id":
		fmt.Fprintln(p.out, "uid=0(root) gid=0(root) groups=0(root)")
	case "stty":
		p.mu.Lock()
		fmt.Fprintf(p.out, "%d %d\n", p.rows, p.columns)
		p.mu.Unlock()
	case "sleep":
		return p.sleep(args)
	case "exit":
		return exitCode(args)
	case "true":
	case "false":
		return 1
	case "test":
		return p.fs.test(args)
	case "tar":
		return p.tar(args)
	default:
		fmt.Fprintf(p.errOut, "sh: %s: not found (the kubelet stand-in runs sh, echo, cat, env, hostname, id, stty size, sleep, exit, true, false, test -d, tar)\n", argv[0])
		return 127
	}
	return 0
}

func (p *proc) hostname() string {
	_, name, _ := strings.Cut(p.pod, "/")
	return name
}

// sleep waits for its seconds ("infinity" too) or until the session ends.
func (p *proc) sleep(args []string) int {
	d := time.Duration(1<<63 - 1)
	if len(args) > 0 && args[0] != "infinity" {
		f, err := strconv.ParseFloat(args[0], 64)
		if err != nil {
			fmt.Fprintf(p.errOut, "sleep: invalid time interval %q\n", args[0])
			return 1
		}
		d = time.Duration(f * float64(time.Second))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-p.ctx.Done():
		return 130
	}
}

func exitCode(args []string) int {
	if len(args) == 0 {
		return 0
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	return n & 0xff
}

// line runs a shell line: commands separated by ";", each split on blanks (no quoting).
func (p *proc) line(s string) int {
	code := 0
	for _, c := range strings.Split(s, ";") {
		argv := strings.Fields(c)
		if len(argv) > 0 && argv[0] == "exit" {
			return exitCode(argv[1:])
		}
		code = p.run(argv)
	}
	return code
}

// shell reads lines from stdin and runs each, until exit or the end of stdin. With a terminal
// it prompts and echoes what is typed, as a terminal's line discipline would.
func (p *proc) shell() int {
	in := p.in
	if p.tty {
		in = &ttyEcho{r: in, w: p.out}
	}
	br := bufio.NewReader(in)
	code := 0
	for {
		if p.tty {
			fmt.Fprint(p.out, "$ ")
		}
		s, err := br.ReadString('\n')
		if s = strings.TrimRight(s, "\r\n"); s != "" {
			argv := strings.Fields(s)
			if argv[0] == "exit" {
				return exitCode(argv[1:])
			}
			code = p.line(s)
		}
		if err != nil {
			return code
		}
	}
}

// ttyEcho echoes what it reads and turns a terminal's carriage returns into newlines.
type ttyEcho struct {
	r io.Reader
	w io.Writer
}

func (t *ttyEcho) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	for i := range b[:n] {
		if b[i] == '\r' {
			b[i] = '\n'
		}
		if b[i] == 4 { // Ctrl-D
			return i, io.EOF
		}
	}
	if n > 0 {
		_, _ = t.w.Write([]byte(strings.ReplaceAll(string(b[:n]), "\n", "\r\n")))
	}
	return n, err
}
