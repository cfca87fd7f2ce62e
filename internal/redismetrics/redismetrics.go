// Package redismetrics measures a component's Redis client: how long each command takes and how
// many fail, the two things an operator checks first when checks turn slow or fail closed.
package redismetrics

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Instrument adds a hook to rdb that records keygate_<subsystem>_redis_command_duration_seconds
// (by command; a pipeline counts once, as "pipeline") and keygate_<subsystem>_redis_errors_total,
// registered with reg. A missing key (redis.Nil) is an answer, not an error; nor is a command
// cut short by its caller's context (shutdown, a client gone), nor a script's first EVALSHA.
func Instrument(rdb redis.UniversalClient, reg prometheus.Registerer, subsystem string) error {
	h := hook{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keygate", Subsystem: subsystem, Name: "redis_command_duration_seconds",
			Help:    "Time Redis took to answer, by command (lower case; pipeline for a pipeline). Blocking reads of change streams (xread) wait up to 2 s by design.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"command"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: subsystem, Name: "redis_errors_total",
			Help: "Redis commands and pipelines that failed (unreachable, timed out, refused); a missing key is not an error.",
		}),
	}
	for _, c := range []prometheus.Collector{h.duration, h.errors} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	rdb.AddHook(h)
	return nil
}

type hook struct {
	duration *prometheus.HistogramVec
	errors   prometheus.Counter
}

func (h hook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if handshake(cmd) {
			return next(ctx, cmd)
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(ctx, strings.ToLower(cmd.Name()), start, err)
		return err
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if allHandshake(cmds) {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(ctx, "pipeline", start, err)
		return err
	}
}

func (h hook) observe(ctx context.Context, command string, start time.Time, err error) {
	h.duration.WithLabelValues(command).Observe(time.Since(start).Seconds())
	// NOSCRIPT is go-redis's Script.Run finding a script not loaded yet: it falls back to EVAL.
	if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		h.errors.Inc()
	}
}

// handshake reports whether cmd is part of go-redis's connection set-up (HELLO, AUTH, SELECT,
// READONLY, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS): older Redis versions refuse some of
// them, which go-redis ignores and so does this count.
func handshake(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "hello", "client", "auth", "select", "readonly":
		return true
	}
	return false
}

func allHandshake(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !handshake(c) {
			return false
		}
	}
	return len(cmds) > 0
}
