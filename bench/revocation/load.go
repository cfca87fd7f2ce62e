package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The load generator is this binary again (roleEnv=load), so that /proc measures its CPU apart
// and its goroutines do not delay the revoker's polls in the bench's own process. Without a
// rate it is closed-loop: each of -conns calls per replica sends its next Check when the
// previous answer arrived. With one, each replica gets rate Checks a second, sent on a clock
// whatever the answers' pace (open loop), by -conns callers; a Check whose time comes while all
// of them wait for answers is not sent (the replica is saturated: the run then says it fell
// short of the rate). Either way over one gRPC connection per replica (as one Envoy worker
// holds one to its ext_authz cluster). Each Check carries one of the allowed keys, in turn; any
// answer but "allowed" ends it with an error. Its protocol: arguments "<conns> <rate>
// <keys file> <replica address>...", then one line on stdin per count wanted ("mark"),
// answered on stdout with the Checks answered so far per replica; EOF on stdin stops it.

func serveLoad(args []string, in io.Reader, out io.Writer) error {
	if len(args) < 4 {
		return fmt.Errorf("want <conns> <rate> <keys file> <address>..., got %q", args)
	}
	conns, err := strconv.Atoi(args[0])
	if err != nil || conns < 1 {
		return fmt.Errorf("conns %q", args[0])
	}
	rate, err := strconv.Atoi(args[1])
	if err != nil || rate < 0 {
		return fmt.Errorf("rate %q", args[1])
	}
	args = args[1:]
	data, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	var reqs []*authv3.CheckRequest
	for _, k := range strings.Fields(string(data)) {
		reqs = append(reqs, checkRequest(k))
	}
	if len(reqs) == 0 {
		return fmt.Errorf("%s: no keys", args[1])
	}
	addrs := args[2:]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := make([]atomic.Int64, len(addrs))
	errc := make(chan error, 1)
	for i, addr := range addrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		client := authv3.NewAuthorizationClient(conn)
		var ticks <-chan struct{} // nil: closed loop
		if rate > 0 {
			ticks = pace(ctx, rate)
		}
		for j := range conns {
			go loadLoop(ctx, client, reqs, j*len(reqs)/conns, ticks, &counts[i], errc)
		}
	}
	return answerMarks(in, out, counts, errc)
}

// pace sends rate ticks a second on the channel it returns, until ctx ends; a tick that no
// caller is ready for is dropped. Ticks are batched per millisecond of timer resolution, so
// that 10 replicas at a few hundred a second cost the generator little.
func pace(ctx context.Context, rate int) <-chan struct{} {
	ticks := make(chan struct{})
	go func() {
		start := time.Now()
		sent := 0
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for due := int(now.Sub(start).Seconds() * float64(rate)); sent < due; sent++ {
					select {
					case ticks <- struct{}{}:
					default: // every caller is waiting for an answer: not sent
					}
				}
			}
		}
	}()
	return ticks
}

// loadLoop sends Checks, starting at key first, back to back or at each tick (when ticks is not
// nil), until ctx ends or an answer is wrong.
func loadLoop(ctx context.Context, c authv3.AuthorizationClient, reqs []*authv3.CheckRequest, first int, ticks <-chan struct{}, n *atomic.Int64, errc chan<- error) {
	for i := first; ctx.Err() == nil; i++ {
		if ticks != nil {
			select {
			case <-ctx.Done():
				return
			case <-ticks:
			}
		}
		a, err := check(ctx, c, reqs[i%len(reqs)])
		if ctx.Err() != nil {
			return
		}
		if err == nil && a != allowed {
			err = errors.New("an allowed key was refused")
		}
		if err != nil {
			select {
			case errc <- err:
			default:
			}
			return
		}
		n.Add(1)
	}
}

// answerMarks prints the counts for each line read, until EOF or a load error.
func answerMarks(in io.Reader, out io.Writer, counts []atomic.Int64, errc <-chan error) error {
	lines := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- struct{}{}
		}
		close(lines)
	}()
	for {
		select {
		case err := <-errc:
			return err
		case _, ok := <-lines:
			if !ok {
				return nil
			}
			f := make([]string, len(counts))
			for i := range counts {
				f[i] = strconv.FormatInt(counts[i].Load(), 10)
			}
			if _, err := fmt.Fprintln(out, strings.Join(f, " ")); err != nil {
				return err
			}
		}
	}
}

// loadGen is the parent's handle on a running load generator.
type loadGen struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr strings.Builder
	n      int
	once   sync.Once
	err    error
}

// startLoad runs a load generator against addrs: closed loop, or rate Checks a second to each.
func startLoad(keysFile string, conns, rate int, addrs []string) (*loadGen, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	g := &loadGen{n: len(addrs)}
	g.cmd = exec.Command(self, append([]string{strconv.Itoa(conns), strconv.Itoa(rate), keysFile}, addrs...)...)
	g.cmd.Env = append(os.Environ(), roleEnv+"=load")
	g.cmd.Stderr = &g.stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	g.lines = bufio.NewScanner(out)
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *loadGen) pid() int { return g.cmd.Process.Pid }

// mark returns the Checks answered so far, per replica. It fails if the generator stopped,
// which it does on the first wrong answer.
func (g *loadGen) mark() ([]int64, error) {
	if _, err := io.WriteString(g.stdin, "mark\n"); err == nil && g.lines.Scan() {
		f := strings.Fields(g.lines.Text())
		counts := make([]int64, len(f))
		for i := range f {
			counts[i], _ = strconv.ParseInt(f[i], 10, 64)
		}
		if len(counts) == g.n {
			return counts, nil
		}
	}
	if err := g.stop(); err != nil {
		return nil, err
	}
	return nil, errors.New("load generator: ended without an answer")
}

// stop ends the generator and returns its error, if it had one. It may be called again.
func (g *loadGen) stop() error {
	g.once.Do(func() { g.err = g.wait() })
	return g.err
}

func (g *loadGen) wait() error {
	g.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("load generator: %v: %s", err, strings.TrimSpace(g.stderr.String()))
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
		return errors.New("load generator did not stop")
	}
}
