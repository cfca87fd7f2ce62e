package redismetrics

import (
	"context"
	"testing"

	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/internal/proc"
	"github.com/keygate-dev/keygate/internal/redisserver"
)

var addr string

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "internal/redismetrics", redisserver.Options{}, func(s *redisserver.Server) { addr = s.Addr })
}

// instrumented is a client of addr measured into a fresh registry.
func instrumented(t *testing.T, addr string) (*redis.Client, *prometheus.Registry) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	reg := prometheus.NewRegistry()
	if err := Instrument(rdb, reg, "test"); err != nil {
		t.Fatal(err)
	}
	return rdb, reg
}

func TestCommandsAreTimedAndMissingKeysAreNoErrors(t *testing.T) {
	ctx := context.Background()
	rdb, reg := instrumented(t, addr)
	if err := rdb.Set(ctx, "redismetrics-k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Get(ctx, "redismetrics-missing").Err(); err != redis.Nil {
		t.Fatalf("GET of a missing key: %v, want redis.Nil", err)
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "redismetrics-k"); return nil }); err != nil {
		t.Fatal(err)
	}
	// A script's first run is an EVALSHA that Redis answers NOSCRIPT, then an EVAL.
	if err := redis.NewScript(`return 1 + `+fmt.Sprint(time.Now().UnixNano())).Run(ctx, rdb, nil).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"set", "get", "pipeline"} {
		if got := timings(t, reg, c); got != 1 {
			t.Errorf("%s: %d timings", c, got)
		}
	}
	if got := errorCount(t, reg); got != 0 {
		t.Errorf("redis_errors_total = %v after answers only (a missing key is one), want 0", got)
	}
}

func TestUnreachableRedisCountsErrors(t *testing.T) {
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rdb, reg := instrumented(t, fmt.Sprintf("127.0.0.1:%d", port))
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING to a port nobody listens on succeeded")
	}
	if got := errorCount(t, reg); got != 1 {
		t.Errorf("redis_errors_total = %v after one failed PING, want 1", got)
	}
}

// timings is how many durations of command reg holds.
func timings(t *testing.T, reg prometheus.Gatherer, command string) uint64 {
	t.Helper()
	for _, m := range family(t, reg, "keygate_test_redis_command_duration_seconds").GetMetric() {
		if m.GetLabel()[0].GetValue() == command {
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func errorCount(t *testing.T, reg prometheus.Gatherer) float64 {
	t.Helper()
	return family(t, reg, "keygate_test_redis_errors_total").GetMetric()[0].GetCounter().GetValue()
}

// family gathers reg (promlint-checked) and returns the family name.
func family(t *testing.T, reg prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	for _, mf := range metricstest.Lint(t, reg) {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}
