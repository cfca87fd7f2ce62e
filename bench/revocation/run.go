package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/internal/toolbin"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// cellResult is one configuration over every round.
type cellResult struct {
	spec    cellSpec
	samples []sample
	elapsed time.Duration             // the time its revocations took: the window of the figures below
	checks  int64                     // load Checks answered in that window, all replicas
	cpu     map[string]time.Duration  // replicas (all), redis, load, bench: CPU in that window
	sched   map[string]procstat.Sched // the same processes' threads' waits for a CPU in that window
	applied hist                      // how late the replicas applied the changes in that window
}

// results are the run's.
type results struct {
	started time.Time
	commit  string
	cells   []*cellResult
}

// benchEnv is what runs for the whole bench.
type benchEnv struct {
	dir      string
	redis    *redisserver.Server
	redisPid int
	keysFile string // the load's allowed keys, one per line
	pool     *pool
	rv       *revoker
}

func run(s settings, progress io.Writer) (*results, error) {
	res := &results{started: time.Now(), commit: commit()}
	if s.extauthz != "" {
		res.commit = s.extauthz + " (prebuilt; the working tree is at " + res.commit + ")"
	}
	for _, c := range s.cells {
		res.cells = append(res.cells, &cellResult{spec: c, cpu: map[string]time.Duration{}, applied: hist{}, sched: map[string]procstat.Sched{}})
	}
	e, err := start(s, progress)
	if err != nil {
		return nil, err
	}
	defer e.stop(s.keep, progress)
	for round := range s.rounds {
		for _, c := range res.cells {
			n := s.revocations / s.rounds
			if round < s.revocations%s.rounds {
				n++
			}
			if err := e.measureCell(s, c, n); err != nil {
				return res, fmt.Errorf("round %d, %s replicas: %w", round+1, c.spec, err)
			}
			last := c.samples[len(c.samples)-n:]
			fmt.Fprintf(progress, "round %d: %-14s %4d revocations: all replicas refuse p50 %s p99 %s max %s; %.0f Checks/s\n",
				round+1, c.spec, n, ms(percentile(alls(last), 0.5)), ms(percentile(alls(last), 0.99)), ms(maxOf(alls(last))),
				float64(c.checks)/c.elapsed.Seconds())
		}
	}
	return res, nil
}

// measureCell runs n revocations with c's replicas, under load if c says so, and adds them and
// the CPU and Checks of their window to c.
func (e *benchEnv) measureCell(s settings, c *cellResult, n int) error {
	ctx := context.Background()
	if err := e.pool.resize(ctx, c.spec.replicas); err != nil {
		return err
	}
	pids := map[string][]int{"redis": {e.redisPid}, "bench": {os.Getpid()}}
	for _, r := range e.pool.reps {
		pids["replicas"] = append(pids["replicas"], r.p.Pid())
	}
	var load *loadGen
	if c.spec.loaded {
		addrs := make([]string, len(e.pool.reps))
		for i, r := range e.pool.reps {
			addrs[i] = r.grpcAddr
		}
		var err error
		if load, err = startLoad(e.keysFile, s.conns, c.spec.rate, addrs); err != nil {
			return err
		}
		defer load.stop()
		pids["load"] = []int{load.pid()}
		time.Sleep(s.warmup)
	}
	before, err := e.snap(ctx, pids, load)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for i := range n {
		smp, err := e.rv.revoke(ctx, i%2 == 1)
		if err != nil {
			return err
		}
		c.samples = append(c.samples, smp)
	}
	c.elapsed += time.Since(t0)
	after, err := e.snap(ctx, pids, load)
	if err != nil {
		return err
	}
	c.add(before, after)
	if load == nil {
		return nil
	}
	if err := checkEveryReplicaLoaded(before.checks, after.checks); err != nil {
		return err
	}
	return load.stop()
}

// snapshot is what the figures of a window are differences of.
type snapshot struct {
	usage   map[string]usage
	checks  []int64 // load Checks answered so far, per replica
	applied hist
}

func (e *benchEnv) snap(ctx context.Context, pids map[string][]int, load *loadGen) (snapshot, error) {
	var s snapshot
	var err error
	if s.usage, err = usageOf(pids); err != nil {
		return s, err
	}
	if load != nil {
		if s.checks, err = load.mark(); err != nil {
			return s, err
		}
	}
	s.applied, err = e.pool.applied(ctx)
	return s, err
}

// add adds the window from before to after to c.
func (c *cellResult) add(before, after snapshot) {
	for name, a := range after.usage {
		b := before.usage[name]
		c.cpu[name] += a.cpu - b.cpu
		c.sched[name] = procstat.Sched{Wait: c.sched[name].Wait + a.sched.Wait - b.sched.Wait,
			Slices: c.sched[name].Slices + a.sched.Slices - b.sched.Slices}
	}
	c.checks += sum(after.checks) - sum(before.checks)
	c.applied = c.applied.plus(after.applied.minus(before.applied))
}

// checkEveryReplicaLoaded fails if some replica answered no load Check in the window.
func checkEveryReplicaLoaded(before, after []int64) error {
	for i := range after {
		if after[i] == before[i] {
			return fmt.Errorf("replica %d answered no load Check while it was measured", i+1)
		}
	}
	return nil
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

// usage is a group of processes' CPU time and scheduler waits so far.
type usage struct {
	cpu   time.Duration
	sched procstat.Sched
}

// usageOf sums each group of processes' usage.
func usageOf(pids map[string][]int) (map[string]usage, error) {
	out := map[string]usage{}
	for name, ps := range pids {
		var u usage
		for _, pid := range ps {
			c, err := procstat.CPU(pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			s, err := procstat.ReadSched(pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			u.cpu, u.sched.Wait, u.sched.Slices = u.cpu+c, u.sched.Wait+s.Wait, u.sched.Slices+s.Slices
		}
		out[name] = u
	}
	return out, nil
}

// start builds extauthz from the working tree, starts Redis and creates the load's keys.
func start(s settings, progress io.Writer) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "keygate-revocation-bench-")
	if err != nil {
		return nil, err
	}
	e := &benchEnv{dir: dir}
	ok := false
	defer func() {
		if !ok {
			e.stop(s.keep, progress)
		}
	}()
	fmt.Fprintf(progress, "building extauthz, starting Redis and creating %d keys\n", s.loadKeys)
	bin := s.extauthz
	if bin == "" {
		if bin, err = buildExtAuthz(dir, progress); err != nil {
			return nil, err
		}
	}
	ctx := context.Background()
	if e.redis, err = redisserver.Start(ctx, redisserver.Options{Dir: filepath.Join(dir, "redis")}); err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	st := store.New(rdb)
	if e.redisPid, err = redisPid(ctx, rdb); err != nil {
		return nil, err
	}
	if e.keysFile, err = createLoadKeys(ctx, st, dir, s.loadKeys); err != nil {
		return nil, err
	}
	e.pool = &pool{bin: bin, logs: filepath.Join(dir, "logs"), redisAddr: e.redis.Addr, gomaxprocs: s.gomaxprocs,
		http: &http.Client{Timeout: 10 * time.Second}}
	e.rv = &revoker{st: st, pool: e.pool, noPolls: s.noPolls}
	ok = true
	return e, nil
}

func buildExtAuthz(dir string, progress io.Writer) (string, error) {
	root, err := toolbin.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "extauthz")
	build := exec.Command("go", "build", "-o", bin, "./extauthz/cmd/extauthz")
	build.Dir, build.Stderr = root, progress
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build ./extauthz/cmd/extauthz: %w", err)
	}
	return bin, nil
}

// createLoadKeys stores n unscoped keys and writes them, one per line, to a file only the owner
// reads (keys never go on a command line).
func createLoadKeys(ctx context.Context, st *store.Store, dir string, n int) (string, error) {
	var lines strings.Builder
	for i := range n {
		k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: fmt.Sprintf("load%d", i)}}
		k.Name = fmt.Sprintf("load-%05d", i)
		plain, err := st.Create(ctx, k)
		if err != nil {
			return "", err
		}
		lines.WriteString(plain + "\n")
	}
	path := filepath.Join(dir, "load-keys")
	return path, os.WriteFile(path, []byte(lines.String()), 0o600)
}

// redisPid asks redis-server its pid (INFO server), so that its CPU is measured too.
func redisPid(ctx context.Context, rdb *redis.Client) (int, error) {
	info, err := rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(info["Server"]["process_id"])
	if err != nil {
		return 0, fmt.Errorf("redis INFO server: process_id: %w", err)
	}
	return pid, nil
}

func (e *benchEnv) stop(keep bool, progress io.Writer) {
	if e.pool != nil {
		e.pool.stop()
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	if keep {
		fmt.Fprintln(progress, "kept", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// commit names the commit measured, and says when extauthz/ or keystore/ had changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if dirty, _ := exec.Command("git", "status", "--porcelain", "--", "extauthz", "keystore").Output(); len(dirty) > 0 {
		c += " with uncommitted changes in extauthz/ or keystore/"
	}
	return c
}
