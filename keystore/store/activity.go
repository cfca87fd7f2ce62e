package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// activityBatch bounds how many keys go into one script call, so that a large flush neither
// builds one huge request nor blocks Redis for long.
const activityBatch = 500

// activityScript sets the last activity of each key that still exists to the given time, unless
// the stored time is as new or newer. Times are RFC3339 UTC in whole seconds, which compare
// correctly as strings. KEYS: records, activity. ARGV: digest, time, digest, time, ...
// It returns how many times it wrote.
var activityScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local d, t = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[1], d) == 1 then
    local old = redis.call('HGET', KEYS[2], d)
    if not old or old < t then
      redis.call('HSET', KEYS[2], d, t)
      n = n + 1
    end
  end
end
return n
`)

// RecordActivity sets status.lastActivity of each key, named by its digest, to the given time
// (at second precision) unless the stored time is already as new or newer, so that an older or
// concurrent batch never moves it backwards. Digests without a record (deleted keys) are
// skipped, never recreated. Zero times are ignored. Each batch of activityBatch keys is one
// atomic script; on error some batches may have been written: calling again with the same
// times is harmless.
func (s *Store) RecordActivity(ctx context.Context, times map[string]time.Time) error {
	args := make([]any, 0, 2*min(len(times), activityBatch))
	var errs []error
	flush := func() {
		if len(args) == 0 {
			return
		}
		if err := activityScript.Run(ctx, s.rdb, []string{recordsKey, activityKey}, args...).Err(); err != nil {
			errs = append(errs, err)
		}
		args = args[:0]
	}
	for d, t := range times {
		if t.IsZero() {
			continue
		}
		args = append(args, d, activityTime(t))
		if len(args) == 2*activityBatch {
			flush()
			if ctx.Err() != nil {
				break
			}
		}
	}
	flush()
	if len(errs) > 0 {
		return fmt.Errorf("record access key activity: %w", errors.Join(errs...))
	}
	return nil
}

// activityTime is t as metav1.Time writes it: RFC3339 in UTC, whole seconds.
func activityTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}
