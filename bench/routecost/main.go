// Command routecost measures what picking a request's route costs in Envoy at N targets, with
// the edge's two possible layouts side by side in one run: every target's routes in one route
// configuration (Envoy matches routes in order, so the cost grows with the targets), and one
// scope per target, picked by the edge's scope filter (a Lua filter that reads the path, then a
// hash lookup; see xds/translate/scopes.go). Each layout runs in its own Envoy with one worker
// thread and direct responses, so that only routing differs. See bench/README.md.
//
//	go run ./bench/routecost [-targets 100,1000,10000] [-requests 20000] [-concurrency 4] [-rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate-dev/keygate/bench/internal/sizes"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/translate"
)

func main() {
	targets := flag.String("targets", "100,1000,10000", "comma-separated numbers of targets")
	requests := flag.Int("requests", 20000, "requests per layout and round")
	concurrency := flag.Int("concurrency", 4, "requests in flight at once")
	rounds := flag.Int("rounds", 3, "rounds per size; the layouts alternate within each, and the table shows the median round")
	flag.Parse()
	ns, err := sizes.Parse(*targets, 1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "routecost: -targets: %v\n", err)
		os.Exit(2)
	}
	if *requests < 1 || *concurrency < 1 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "routecost: -requests, -concurrency and -rounds must be positive")
		os.Exit(2)
	}
	if err := run(ns, *requests, *concurrency, *rounds); err != nil {
		fmt.Fprintf(os.Stderr, "routecost: %v\n", err)
		os.Exit(1)
	}
}

// layout is one way of arranging the routes.
type layout struct {
	name   string
	config func(port, n int) string
}

var layouts = []layout{
	{"one route configuration", oneTableConfig},
	{"a scope per target", scopedConfig},
}

// figures are one round of one layout.
type figures struct {
	mean, p50, p99 time.Duration
	perSecond      float64
}

func run(ns []int, requests, concurrency, rounds int) error {
	envoyBin, err := toolbin.Path("envoy")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "keygate-routecost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("One run, %s, Envoy with --concurrency 1, %d requests per layout and round, %d in flight, median of %d rounds.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), requests, concurrency, rounds)
	fmt.Println("| targets | figure | " + layouts[0].name + " | " + layouts[1].name + " | ratio |")
	fmt.Println("| ---: | --- | ---: | ---: | ---: |")
	for _, n := range ns {
		results := make([][]figures, len(layouts))
		envoys := make([]*envoy, len(layouts))
		for i, l := range layouts {
			e, err := startEnvoy(envoyBin, filepath.Join(dir, fmt.Sprintf("%d-%d", n, i)), l, n)
			if err != nil {
				return fmt.Errorf("%d targets, %s: %w", n, l.name, err)
			}
			defer e.stop()
			envoys[i] = e
		}
		for round := range rounds {
			for i, e := range envoys {
				f, err := e.load(n, requests, concurrency)
				if err != nil {
					return fmt.Errorf("%d targets, %s: %w", n, layouts[i].name, err)
				}
				fmt.Fprintf(os.Stderr, "%d targets, round %d, %s: mean %s, p99 %s, %.0f/s\n", n, round+1, layouts[i].name, f.mean, f.p99, f.perSecond)
				results[i] = append(results[i], f)
			}
		}
		for _, e := range envoys {
			e.stop()
		}
		a, b := median(results[0]), median(results[1])
		row := func(name string, x, y float64, format string) {
			fmt.Printf("| %d | %s | "+format+" | "+format+" | ×%.2f |\n", n, name, x, y, y/x)
		}
		row("mean latency (µs)", us(a.mean), us(b.mean), "%.0f")
		row("p50 latency (µs)", us(a.p50), us(b.p50), "%.0f")
		row("p99 latency (µs)", us(a.p99), us(b.p99), "%.0f")
		row("requests per second", a.perSecond, b.perSecond, "%.0f")
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median is the round with the median mean latency.
func median(fs []figures) figures {
	s := slices.Clone(fs)
	slices.SortFunc(s, func(a, b figures) int { return int(a.mean - b.mean) })
	return s[len(s)/2]
}

func targetName(i int) string { return fmt.Sprintf("t%05d", i) }

// route is one target's two routes as the edge has them (exact path and prefix), answering the
// target's name directly instead of forwarding, plus the metadata the scope filter looks for.
func routes(b *strings.Builder, i int, indent string, scoped bool) {
	name := targetName(i)
	prefix := "/kubernetes/cluster/" + name
	meta := ""
	if scoped {
		filter, key := translate.ScopedMetadata()
		meta = fmt.Sprintf("\n%s  metadata: {filter_metadata: {%s: {%s: true}}}", indent, filter, key)
	}
	for _, m := range []string{"path: " + prefix, "prefix: " + prefix + "/"} {
		fmt.Fprintf(b, "%s- match: {%s}%s\n%s  direct_response: {status: 200, body: {inline_string: %s}}\n", indent, m, meta, indent, name)
	}
}

const notFound = `- match: {prefix: "/"}
  direct_response: {status: 404, body: {inline_string: not found}}
`

func listener(port int, routeSpecifier, filters string) string {
	return fmt.Sprintf(`static_resources:
  listeners:
  - name: edge
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
%s
          http_filters:
%s
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, port, routeSpecifier, filters)
}

func oneTableConfig(port, n int) string {
	var b strings.Builder
	b.WriteString("          route_config:\n            name: edge\n            virtual_hosts:\n            - name: edge\n              domains: [\"*\"]\n              routes:\n")
	for i := range n {
		routes(&b, i, "              ", false)
	}
	b.WriteString(indent(notFound, "              "))
	return listener(port, b.String(), "")
}

func scopedConfig(port, n int) string {
	var b strings.Builder
	b.WriteString(`          scoped_routes:
            name: edge
            scope_key_builder:
              fragments:
              - header_value_extractor: {name: ` + translate.ScopeHeader + `, index: 0}
            scoped_route_configurations_list:
              scoped_route_configurations:
`)
	scope := func(name, key string, body func(indent string)) {
		fmt.Fprintf(&b, "              - name: %s\n                key: {fragments: [{string_key: %q}]}\n                route_configuration:\n                  name: %s\n                  virtual_hosts:\n                  - name: %s\n                    domains: [\"*\"]\n                    routes:\n", name, key, name, name)
		body("                    ")
	}
	scope("edge", translate.StaticScopeKey, func(in string) { b.WriteString(indent(notFound, in)) })
	for i := range n {
		scope(targetName(i), "cluster/"+targetName(i), func(in string) { routes(&b, i, in, true) })
	}
	filter, _ := translate.ScopedMetadata()
	lua := fmt.Sprintf("          - name: %s\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n              default_source_code:\n                inline_string: |\n%s",
		filter, indent(translate.ScopeLua(), "                  "))
	return listener(port, b.String(), lua)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "") + "\n"
}

type envoy struct {
	p      *proc.Process
	url    string
	client *http.Client
}

func startEnvoy(bin, dir string, l layout, n int) (*envoy, error) {
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "envoy.yaml")
	admin := fmt.Sprintf("admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: %d}}\n", ports[1])
	if err := os.WriteFile(cfg, []byte(admin+l.config(ports[0], n)), 0o644); err != nil {
		return nil, err
	}
	p, err := proc.Start("envoy", dir, nil, bin, "-c", cfg, "--concurrency", "1", "--log-level", "warn", "--base-id", strconv.Itoa(ports[1]))
	if err != nil {
		return nil, err
	}
	e := &envoy{p: p, url: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Ready once the last target answers with its own name.
	last := e.url + "/kubernetes/cluster/" + targetName(n-1) + "/version"
	if err := proc.WaitFor(ctx, p, "envoy ("+l.name+")", func(ctx context.Context) error {
		_, err := e.get(ctx, last, targetName(n-1))
		return err
	}); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return e, nil
}

func (e *envoy) stop() { e.p.Stop(5 * time.Second) }

// get requests url and fails unless the answer is 200 with body want: the request reached the
// target it named.
func (e *envoy) get(ctx context.Context, url, want string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || string(body) != want {
		return 0, fmt.Errorf("GET %s: %d %q, want 200 %q", url, resp.StatusCode, body, want)
	}
	return took, nil
}

// load sends requests to random targets, concurrency at a time, and returns the figures.
func (e *envoy) load(n, requests, concurrency int) (figures, error) {
	latencies := make([]time.Duration, requests)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		loadErr error
		next    = make(chan int)
	)
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := targetName(rand.IntN(n))
				took, err := e.get(context.Background(), e.url+"/kubernetes/cluster/"+t+"/api/v1/pods", t)
				if err != nil {
					// Keep draining, so that the sender never blocks; the run fails below.
					mu.Lock()
					loadErr = err
					mu.Unlock()
					continue
				}
				latencies[i] = took
			}
		}()
	}
	for i := range requests {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if loadErr != nil {
		return figures{}, loadErr
	}
	slices.Sort(latencies)
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	return figures{
		mean:      sum / time.Duration(requests),
		p50:       latencies[requests/2],
		p99:       latencies[requests*99/100],
		perSecond: float64(requests) / elapsed.Seconds(),
	}, nil
}
