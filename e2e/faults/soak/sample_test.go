//go:build soak

package soak

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/redisflags"
)

// A Sample is every component measured once.
type Sample struct {
	At time.Time
	// Answers is how many answers the load had counted by then.
	Answers int64
	// Of are the measures by component (xds, extauthz-0, extauthz-1, keystore, envoy,
	// redis-<port>).
	Of map[string]Measure
}

// Measure is one component's figures; -1 where a figure does not apply (Envoy's goroutines,
// a data node's used_memory for keygate's components) or could not be read.
type Measure struct {
	RSS        int64 // bytes
	Goroutines int64
	FDs        int64
	// RedisUsed is a Redis server's used_memory, bytes.
	RedisUsed int64
}

// measureAll measures keygate's components and every running Redis data node.
func measureAll(ctx context.Context, answers int64) Sample {
	s := Sample{At: time.Now(), Answers: answers, Of: map[string]Measure{}}
	for _, c := range platform.Components() {
		m := Measure{RSS: rss(c.Pid), FDs: fds(c.Pid), Goroutines: -1, RedisUsed: -1}
		if c.MetricsURL != "" {
			m.Goroutines = goroutines(ctx, c.MetricsURL)
		}
		s.Of[c.Name] = m
	}
	for _, n := range platform.RedisServers() {
		if !n.Running() {
			continue
		}
		_, port, _ := strings.Cut(n.Addr, ":")
		s.Of["redis-"+port] = Measure{RSS: rss(n.Pid()), FDs: fds(n.Pid()), Goroutines: -1, RedisUsed: usedMemory(ctx, n.Addr)}
	}
	return s
}

// rss is VmRSS of /proc/<pid>/status in bytes, -1 if unreadable.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}

// fds is how many file descriptors the process holds open, -1 if unreadable.
func fds(pid int) int64 {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return int64(len(entries))
}

// goroutines is go_goroutines of a component's /metrics, -1 if unreadable.
func goroutines(ctx context.Context, url string) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(n)
			}
		}
	}
	return -1
}

// usedMemory is used_memory of INFO memory on the Redis server at addr, -1 if unreadable: a
// client of that one server with the components' own flags (TLS, ACL user).
func usedMemory(ctx context.Context, addr string) int64 {
	var c redisflags.Config
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse(platform.RedisArgs()); err != nil {
		return -1
	}
	if err := c.Parse(); err != nil {
		return -1
	}
	o := c.Options()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer rdb.Close()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
