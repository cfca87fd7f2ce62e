package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/internal/toolbin"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// cell is one measurement: a case, a key, a connection count and TLS setting.
type cell struct {
	c     string
	key   string
	conns int
	tls   bool
}

// figures are one cell's round.
type figures struct {
	load loadResult
	cpu  map[string]time.Duration // process → CPU during the cell
}

// benchEnv is what runs: the processes measured and the keys.
type benchEnv struct {
	dir     string
	procs   map[string]*proc.Process // envoy, extauthz, null, redis, upstream
	redis   *redisserver.Server
	ports   envoyPorts
	keys    map[string]string // key kind → plain key
	client  *tls.Config
	started time.Time
	// redisPid is redis-server's process (redisserver runs it).
	redisPid int
	cases    []benchCase
	// pprof is the profiling address of each authz process (extauthz, null, ...).
	pprof map[string]string
	// profiles is where the cells' CPU profiles are kept ("" for none).
	profiles string
	// extAuthzTimeout bounds each ext_authz check; 0 is the edge's default.
	extAuthzTimeout time.Duration
}

func run(s settings, progress io.Writer) (map[cell][]figures, *benchEnv, error) {
	if s.profiles != "" {
		// The profiles of an earlier run go first, so that the directory holds this run's only;
		// nothing else in it is touched.
		if err := os.MkdirAll(s.profiles, 0o755); err != nil {
			return nil, nil, err
		}
		old, err := filepath.Glob(filepath.Join(s.profiles, "*.pprof"))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return nil, nil, err
			}
		}
	}
	env, err := start(s.fillerKey, s.extAuthzTimeout, withVariants(s.variants), progress)
	if err != nil {
		return nil, nil, err
	}
	env.profiles = s.profiles
	defer env.stop()
	results := map[cell][]figures{}
	for round := range s.rounds {
		for _, tlsOn := range s.tls {
			for _, conns := range s.conns {
				for _, k := range s.keys {
					for _, c := range env.cases {
						if !contains(c.keys, k) {
							continue
						}
						cl := cell{c.name, k, conns, tlsOn}
						f, err := env.measure(c, cl, s.duration, round)
						if err != nil {
							return nil, nil, fmt.Errorf("%s, %s key, %d connections, TLS %t: %w", c.name, k, conns, tlsOn, err)
						}
						fmt.Fprintf(progress, "round %d: %-24s %-14s c=%-3d tls=%-5t %8.0f req/s  p99 %s\n",
							round+1, c.name, k, conns, tlsOn, f.load.perSecond(), f.load.percentile(0.99))
						results[cl] = append(results[cl], f)
					}
				}
			}
		}
	}
	return results, env, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// measure runs one cell and reads every process's CPU time around it; and, when the case calls
// an authz server, keeps that server's CPU profile of the measured part of the cell.
func (e *benchEnv) measure(c benchCase, cl cell, d time.Duration, round int) (figures, error) {
	before, err := e.cpu()
	if err != nil {
		return figures{}, err
	}
	t := target{addr: "127.0.0.1:" + strconv.Itoa(e.ports.listeners[listenerName(cl.c, cl.tls)]), path: requestPath,
		key: e.keys[cl.key], status: expected(cl.c, cl.key), expect: upstreamExpects(cl.c)}
	if cl.tls {
		t.tls = e.client
	}
	profiled := make(chan error, 1)
	if _, ok := e.pprof[c.authz]; ok && e.profiles != "" && d >= time.Second {
		go func() { profiled <- e.profile(c, cl, d, round) }()
	} else {
		profiled <- nil
	}
	r, err := load(t, cl.conns, d)
	if err != nil {
		err = fmt.Errorf("%w (Envoy's counters of failed checks: %s)", err, e.checkFailures())
	}
	if perr := <-profiled; err == nil {
		err = perr
	}
	if err != nil {
		return figures{}, err
	}
	after, err := e.cpu()
	if err != nil {
		return figures{}, err
	}
	f := figures{load: r, cpu: map[string]time.Duration{}}
	for name, a := range after {
		f.cpu[name] = a - before[name]
	}
	return f, nil
}

// checkFailures are Envoy's non-zero counters that say why a check failed (a 503 from ext_authz
// is a timeout, a reset or a lost connection): ext_authz's errors and the authz clusters'
// timeouts, resets, GOAWAYs, keepalive failures and closed connections.
func (e *benchEnv) checkFailures() string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?usedonly&filter=%s", e.ports.admin,
		`(ext_authz\.(error|timeout|failure_mode_allowed))|(cluster\.(extauthz|nullauthz|v_.*)\..*(reset|timeout|destroy|goaway|keepalive|fail|overflow|protocol_error|close))`))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if line != "" && !strings.HasSuffix(line, ": 0") {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// expected is the one right answer for a key in a case.
func expected(c, key string) int {
	switch {
	case c == caseNoAuth || key == keyAllowed || key == keyRule:
		return http.StatusOK
	case key == keyUnknown:
		return http.StatusUnauthorized
	default:
		return http.StatusForbidden
	}
}

// upstreamExpects is what the upstream must receive from case c: the key as the client sent it
// where nothing checks it or Envoy's own filter keeps it (api_key_auth forwards it), otherwise
// the identity and no key.
func upstreamExpects(c string) string {
	if c == caseNoAuth || c == caseAPIKey {
		return expectKey
	}
	return expectIdentity
}

// profile takes the CPU profile of c's authz server during cl's measured part (after its
// warm-up; pprof takes whole seconds, so it may outlast the cell by less than one) and writes it
// to the profiles directory, named after the server, the case's variant, the key, the
// connections, TLS and the round.
func (e *benchEnv) profile(c benchCase, cl cell, d time.Duration, round int) error {
	time.Sleep(d / 10)
	seconds := int(math.Ceil(d.Seconds()))
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.pprof[c.authz], seconds))
	if err != nil {
		return fmt.Errorf("profile of %s: %w", c.authz, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("profile of %s: HTTP %d: %s", c.authz, resp.StatusCode, body)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("profile of %s: %w", c.authz, err)
	}
	return os.WriteFile(filepath.Join(e.profiles, profileName(c, cl, round)), data, 0o644)
}

// profileName is e.g. extauthz_allowed_c16_tls-false_r1.pprof, or with the variant after the
// server: null_response-before_allowed_c16_tls-false_r2.pprof.
func profileName(c benchCase, cl cell, round int) string {
	server := c.authz
	if c.variant != nil && c.variant.serverOption == "" {
		server += "_" + c.variant.flag
	}
	return fmt.Sprintf("%s_%s_c%d_tls-%t_r%d.pprof", server, strings.ReplaceAll(cl.key, " ", "-"), cl.conns, cl.tls, round+1)
}

func (e *benchEnv) cpu() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for name, p := range e.procs {
		c, err := procstat.CPU(p.Pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = c
	}
	c, err := procstat.CPU(e.redisPid)
	out["redis"] = c
	return out, err
}

func (e *benchEnv) stop() {
	for _, p := range e.procs {
		p.Stop(5 * time.Second)
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	os.RemoveAll(e.dir)
}

// start builds extauthz and the in-Envoy module, starts Redis with the keys, the upstream, the do-nothing server,
// extauthz and Envoy, and waits until each answers.
func start(total int, extAuthzTimeout time.Duration, cases []benchCase, progress io.Writer) (*benchEnv, error) {
	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keygate-authz-bench-")
	if err != nil {
		return nil, err
	}
	e := &benchEnv{dir: dir, procs: map[string]*proc.Process{}, started: time.Now(), cases: cases, pprof: map[string]string{}, extAuthzTimeout: extAuthzTimeout}
	ok := false
	defer func() {
		if !ok {
			e.stop()
		}
	}()
	fmt.Fprintln(progress, "building extauthz, starting Redis and creating", total, "keys")
	extauthzBin := filepath.Join(dir, "extauthz")
	root, err := toolbin.RepoRoot()
	if err != nil {
		return nil, err
	}
	build := exec.Command("go", "build", "-o", extauthzBin, "./extauthz/cmd/extauthz")
	build.Dir, build.Stderr = root, progress
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build ./extauthz/cmd/extauthz: %w", err)
	}
	if err := buildModule(root, dir, progress); err != nil {
		return nil, err
	}
	for _, c := range cases {
		if v := c.variant; v != nil && v.baseline != "" {
			if err := buildAt(root, v.baseline, filepath.Join(dir, "baseline-src"), filepath.Join(dir, "extauthz-baseline"), progress); err != nil {
				return nil, err
			}
		}
	}
	ctx := context.Background()
	if e.redis, err = redisserver.Start(ctx, redisserver.Options{Dir: filepath.Join(dir, "redis")}); err != nil {
		return nil, err
	}
	api, err := e.createKeys(ctx, total)
	if err != nil {
		return nil, err
	}
	if err := e.startProcesses(ctx, envoyBin, extauthzBin, api); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// buildAt builds extauthz as it was at the git revision rev into bin, from a copy of that
// revision's tree in src.
func buildAt(root, rev, src, bin string, progress io.Writer) error {
	fmt.Fprintln(progress, "building extauthz at", rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	tar := filepath.Join(src, "tree.tar")
	archive := exec.Command("git", "archive", "-o", tar, rev)
	archive.Dir, archive.Stderr = root, progress
	if err := archive.Run(); err != nil {
		return fmt.Errorf("git archive %s: %w", rev, err)
	}
	untar := exec.Command("tar", "-xf", tar, "-C", src)
	untar.Stderr = progress
	if err := untar.Run(); err != nil {
		return fmt.Errorf("tar -xf %s: %w", tar, err)
	}
	build := exec.Command("go", "build", "-o", bin, "./extauthz/cmd/extauthz")
	build.Dir, build.Stderr = src, progress
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./extauthz/cmd/extauthz at %s: %w", rev, err)
	}
	return nil
}

// createKeys stores the bench's four kinds of key (the unknown one only as a plain key) and
// total-3 others, and returns api_key_auth's credentials (plain key → client name).
func (e *benchEnv) createKeys(ctx context.Context, total int) (map[string]string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	defer rdb.Close()
	st := store.New(rdb)
	scopes := map[string]*v1.AccessKeyScope{
		keyAllowed: nil,
		keyRefused: {Clusters: []v1.AccessKeyScopeCluster{{Cluster: "elsewhere"}}},
		keyRule: {Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get", "list", "watch"},
			Resources: []v1.GroupResources{{Resources: []string{"pods"}}}, Namespaces: []string{"default"}}}},
	}
	e.keys = map[string]string{}
	api := map[string]string{}
	for _, kind := range []string{keyAllowed, keyRefused, keyRule} {
		k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: "bench", Scope: scopes[kind]}}
		k.Name = "bench-" + map[string]string{keyAllowed: "allowed", keyRefused: "refused", keyRule: "rule"}[kind]
		plain, err := st.Create(ctx, k)
		if err != nil {
			return nil, err
		}
		e.keys[kind], api[plain] = plain, k.Name
	}
	unknown, err := store.GenerateKey()
	if err != nil {
		return nil, err
	}
	e.keys[keyUnknown] = unknown
	var mu sync.Mutex
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < total-3; i += 8 {
				k := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: fmt.Sprintf("user%d", i)}}
				k.Name = fmt.Sprintf("filler-%05d", i)
				plain, err := st.Create(ctx, k)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				api[plain] = k.Name
				mu.Unlock()
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return api, nil
}

// keyTable is the do-nothing server's and the in-Envoy module's table: each known key's digest
// and the status to answer.
func (e *benchEnv) keyTable() string {
	var lines string
	for kind, plain := range e.keys {
		if kind != keyUnknown {
			lines += fmt.Sprintf("%s %d\n", store.Digest(plain), expected(caseNull, kind))
		}
	}
	return lines
}

// nullKeys writes the do-nothing server's table.
func (e *benchEnv) nullKeys() (string, error) {
	path := filepath.Join(e.dir, "null-keys")
	return path, os.WriteFile(path, []byte(e.keyTable()), 0o600)
}

// benchServer is one process the bench starts before Envoy.
type benchServer struct {
	name, bin string
	env, args []string
	ready     func(context.Context) error
}

func (e *benchEnv) startProcesses(ctx context.Context, envoyBin, extauthzBin string, api map[string]string) error {
	extauthzHTTP, err := e.allocatePorts()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	nullKeys, err := e.nullKeys()
	if err != nil {
		return err
	}
	logs := filepath.Join(e.dir, "logs")
	starts := []benchServer{
		{"upstream", self, []string{roleEnv + "=upstream " + addr(e.ports.upstream)}, nil, proc.TCPReady(addr(e.ports.upstream))},
		{"null", self, []string{roleEnv + "=null " + addr(e.ports.null) + " " + nullKeys + " " + e.pprof["null"]}, nil, proc.TCPReady(addr(e.ports.null))},
		{"extauthz", extauthzBin, nil, []string{"--grpc-address", addr(e.ports.extauthz), "--grpc-insecure-loopback",
			"--http-address", addr(extauthzHTTP), "--pprof-address", e.pprof["extauthz"], "--redis-address", e.redis.Addr, "--log-level", "warn"},
			proc.HTTPReady("http://" + addr(extauthzHTTP) + "/readyz")},
	}
	for _, s := range append(starts, e.variantServers(self, nullKeys)...) {
		p, err := proc.Start(s.name, logs, s.env, s.bin, s.args...)
		if err != nil {
			return err
		}
		e.procs[s.name] = p
		if err := proc.WaitFor(ctx, p, s.name, s.ready); err != nil {
			return err
		}
	}
	return e.startEnvoy(ctx, envoyBin, api, logs)
}

// variantServers are the servers the variants' checks reach besides the base cases' (self is
// the bench's binary, which plays the do-nothing servers).
func (e *benchEnv) variantServers(self, nullKeys string) []benchServer {
	var starts []benchServer
	for _, c := range e.cases {
		if v := c.variant; v != nil && v.httpService != "" && !slices.ContainsFunc(starts, func(s benchServer) bool { return s.name == nullHTTP }) {
			// One do-nothing HTTP server for every httpService variant (each cell measures it alone).
			env := []string{roleEnv + "=" + nullHTTP + " " + addr(e.ports.variantServers[nullHTTP]) + " " + nullKeys + " " + e.pprof[nullHTTP]}
			starts = append(starts, benchServer{nullHTTP, self, env, nil, proc.TCPReady(addr(e.ports.variantServers[nullHTTP]))})
		}
		if v := c.variant; v != nil && v.serverOption != "" {
			p := v.process()
			env := []string{roleEnv + "=null " + addr(e.ports.variantServers[p]) + " " + nullKeys + " " + e.pprof[p] + " " + v.serverOption}
			if v.serverOption == "adaptive-stacks" {
				env = append(env, "GODEBUG=adaptivestackstart=1")
			}
			starts = append(starts, benchServer{p, self, env, nil, proc.TCPReady(addr(e.ports.variantServers[p]))})
		}
		if v := c.variant; v != nil && v.baseline != "" {
			// Flags every revision of extauthz takes; --pprof-address is newer.
			p, http := v.process(), e.pprof[v.process()]
			starts = append(starts, benchServer{p, filepath.Join(e.dir, "extauthz-baseline"), nil, []string{"--grpc-address", addr(e.ports.variantServers[p]),
				"--grpc-insecure-loopback", "--http-address", http, "--redis-address", e.redis.Addr, "--log-level", "warn"},
				proc.HTTPReady("http://" + http + "/readyz")})
			delete(e.pprof, p) // no profiles
		}
	}
	return starts
}

// allocatePorts picks free ports for every process and listener of the run (e.ports), and for
// the servers' profiles (e.pprof); it returns extauthz's metrics and health port.
func (e *benchEnv) allocatePorts() (extauthzHTTP int, err error) {
	ports, err := proc.FreePorts(7 + 4*len(e.cases))
	if err != nil {
		return 0, err
	}
	e.ports = envoyPorts{admin: ports[0], upstream: ports[1], extauthz: ports[2], null: ports[3], variantServers: map[string]int{}, listeners: map[string]int{}}
	e.pprof = map[string]string{"extauthz": addr(ports[5]), "null": addr(ports[6])}
	i := 7
	for _, c := range e.cases {
		if v := c.variant; v != nil && (v.serverOption != "" || v.baseline != "" || v.httpService != "") {
			if _, done := e.ports.variantServers[v.process()]; !done { // a process may serve several variants
				// The server's port and its profiles' (a baseline's: its metrics and health).
				e.ports.variantServers[v.process()], e.pprof[v.process()] = ports[i], addr(ports[i+1])
				i += 2
			}
		}
		for _, t := range []bool{false, true} {
			e.ports.listeners[listenerName(c.name, t)] = ports[i]
			i++
		}
	}
	return ports[4], nil
}

// addr is the loopback address of port p.
func addr(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

func (e *benchEnv) startEnvoy(ctx context.Context, envoyBin string, api map[string]string, logs string) error {
	ca, err := pki.NewCA("keygate bench CA")
	if err != nil {
		return err
	}
	serving, err := ca.Server("bench", "127.0.0.1")
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(e.dir, "serving")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	e.client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	cfg, err := envoyConfig(e.cases, e.ports, certFile, keyFile, filterSettings{apiKeys: api, refusedClient: "bench-refused",
		table: e.keyTable(), extAuthzTimeout: e.extAuthzTimeout})
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(e.dir, "envoy.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	p, err := proc.Start("envoy", logs, []string{"ENVOY_DYNAMIC_MODULES_SEARCH_PATH=" + e.dir}, envoyBin, "-c", cfgPath, "--concurrency", "1", "--log-level", "warn",
		"--base-id", strconv.Itoa(e.ports.admin))
	if err != nil {
		return err
	}
	e.procs["envoy"] = p
	if err := proc.WaitFor(ctx, p, "envoy", proc.HTTPReady(fmt.Sprintf("http://127.0.0.1:%d/ready", e.ports.admin))); err != nil {
		return err
	}
	return e.addRedis(ctx)
}

// addRedis finds redis-server's pid (INFO server), so that its CPU is measured too.
func (e *benchEnv) addRedis(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	defer rdb.Close()
	info, err := rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(info["Server"]["process_id"])
	if err != nil {
		return fmt.Errorf("redis INFO server: process_id: %w", err)
	}
	e.redisPid = pid
	return nil
}
