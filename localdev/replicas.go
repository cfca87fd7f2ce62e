package localdev

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate-dev/keygate/internal/proc"
)

// The fault tests (e2e/faults) kill and restart the edge's own components. Kill is SIGKILL, as
// a crash, an OOM kill or a lost node leaves them: no graceful shutdown, no final flush.

// extauthzReplica is one extauthz process after the first, on ports of its own. Its process is
// swapped on a restart while other goroutines may read it (Components), hence atomic.
type extauthzReplica struct {
	grpc, http string
	proc       atomic.Pointer[proc.Process]
}

// startReplicas starts the extauthz processes after the first (Options.ExtauthzReplicas); the
// edge's Envoy lists them all in its extauthz cluster.
func (p *Platform) startReplicas(ctx context.Context) error {
	for i := 1; i < p.opts.ExtauthzReplicas; i++ {
		ports, err := proc.FreePorts(2)
		if err != nil {
			return err
		}
		p.replicas = append(p.replicas, &extauthzReplica{grpc: addr(ports[0]), http: addr(ports[1])})
		p.step("starting extauthz replica %d", i)
		if err := p.StartExtAuthzReplica(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// replicaPorts are the gRPC ports of the extauthz replicas after the first.
func (p *Platform) replicaPorts() []uint16 {
	var ports []uint16
	for _, r := range p.replicas {
		_, port, _ := net.SplitHostPort(r.grpc) // addr's own form
		n, _ := strconv.ParseUint(port, 10, 16)
		ports = append(ports, uint16(n))
	}
	return ports
}

func (p *Platform) replicaProcs() []*proc.Process {
	var ps []*proc.Process
	for _, r := range p.replicas {
		if q := r.proc.Load(); q != nil {
			ps = append(ps, q)
		}
	}
	return ps
}

// ExtAuthzReplicas is how many extauthz processes run behind the edge.
func (p *Platform) ExtAuthzReplicas() int { return 1 + len(p.replicas) }

// ExtAuthzHTTPAddress is replica i's --http-address (/metrics, /readyz).
func (p *Platform) ExtAuthzHTTPAddress(i int) string {
	if i == 0 {
		return p.extauthzHTTP
	}
	return p.replicas[i-1].http
}

// StartExtAuthzReplica (re)starts extauthz replica i (0 is the first, StartExtAuthz's) with the
// arguments of the first start and extraArgs (later flags win), and waits until it is ready.
func (p *Platform) StartExtAuthzReplica(ctx context.Context, i int, extraArgs ...string) error {
	if i < 0 || i > len(p.replicas) {
		return fmt.Errorf("extauthz replica %d: the platform runs %d", i, p.ExtAuthzReplicas())
	}
	args := append([]string{}, p.extauthzArgs...)
	name, httpAddr := "extauthz", p.extauthzHTTP
	if i > 0 {
		r := p.replicas[i-1]
		name, httpAddr = fmt.Sprintf("extauthz-%d", i), r.http
		args = append(args, "--grpc-address", r.grpc, "--http-address", r.http)
	}
	q, err := proc.Start(name, p.logs, nil, filepath.Join(p.Bin, "extauthz"), append(args, extraArgs...)...)
	if err != nil {
		return err
	}
	p.extauthzProc(i).Store(q)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, q, name, proc.HTTPReady("http://"+httpAddr+"/readyz"))
}

// extauthzProc is where extauthz replica i's process is kept (i in range).
func (p *Platform) extauthzProc(i int) *atomic.Pointer[proc.Process] {
	if i == 0 {
		return &p.extauthz
	}
	return &p.replicas[i-1].proc
}

// KillExtAuthzReplica kills extauthz replica i (SIGKILL) and waits until it has exited.
func (p *Platform) KillExtAuthzReplica(i int) error {
	if i < 0 || i > len(p.replicas) {
		return fmt.Errorf("extauthz replica %d: the platform runs %d", i, p.ExtAuthzReplicas())
	}
	return kill(p.extauthzProc(i).Load())
}

// KillXDS kills xds (SIGKILL); Envoy keeps its last configuration meanwhile.
func (p *Platform) KillXDS() error { return kill(p.xds.Load()) }

// StartXDS starts xds again with the arguments of the first start and waits until it is ready.
func (p *Platform) StartXDS(ctx context.Context) error {
	q, err := proc.Start("xds", p.logs, nil, filepath.Join(p.Bin, "xds"), p.xdsArgs...)
	if err != nil {
		return err
	}
	p.xds.Store(q)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return proc.WaitFor(wctx, q, "xds", proc.HTTPReady(strings.TrimSuffix(p.XDSMetricsURL, "/metrics")+"/readyz"))
}

// KillKeystore kills `keystore serve` (SIGKILL); StartKeystore starts it again.
func (p *Platform) KillKeystore() error { return kill(p.keystore.Load()) }

func kill(q *proc.Process) error {
	if q == nil {
		return fmt.Errorf("not running")
	}
	select {
	case <-q.Exited():
		return fmt.Errorf("%s has exited already", q.Name)
	default:
	}
	if err := q.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", q.Name, err)
	}
	select {
	case <-q.Exited():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit 10s after SIGKILL", q.Name)
	}
}
