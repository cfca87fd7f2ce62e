package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// activityBatch bounds how many script calls go into one pipeline, so that a large flush neither
// builds one huge request nor holds one huge reply in memory.
const activityBatch = 500

// activityScript sets status.lastActivity of one record (KEYS[1]) to ARGV[1] (RFC3339 UTC,
// whole seconds) unless the stored time is as new or newer. Running in Redis makes the
// compare-and-set atomic against every other writer of the record, and it touches one key only,
// so it runs on Redis Cluster.
//
// cjson decodes the record to read the stored time and to verify the result, but the record is
// not re-encoded by cjson: cjson would write integers above 1e14 (a ttl of many years, e.g.
// 9223372036854775807) in exponent notation, which Go cannot decode into an int64, and would turn
// empty arrays into objects, so a round trip could break a key. Instead the status object, which
// Go always writes last (record.key is the record's last field, status the key's last field, and
// lastActivity status's only field), is replaced in place, and the result is decoded again and
// compared with the original: any difference other than lastActivity aborts without writing.
var activityScript = redis.NewScript(`
local canonical = '^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$'
local t = ARGV[1]
if type(t) ~= 'string' or not string.match(t, canonical) then
  return redis.error_reply('ERR keygate activity: time ' .. tostring(t) .. ' is not RFC3339 UTC in whole seconds')
end
local data = redis.call('GET', KEYS[1])
if not data then
  return 0
end
local ok, rec = pcall(cjson.decode, data)
if not ok or type(rec) ~= 'table' or type(rec.key) ~= 'table' or type(rec.key.status) ~= 'table' then
  return redis.error_reply('ERR keygate activity: corrupt access key record')
end
local old = rec.key.status.lastActivity
-- Canonical times compare correctly as strings. A non-canonical stored value (never written by
-- Go's metav1.Time) is replaced.
if type(old) == 'string' and string.match(old, canonical) and old >= t then
  return 2
end
local newStatus = '"status":{"lastActivity":' .. cjson.encode(t) .. '}}}'
local out
local empty = '"status":{}}}'
if string.sub(data, -#empty) == empty then
  out = string.sub(data, 1, #data - #empty) .. newStatus
else
  -- [^"]* cannot cross a quote, so the match is the record's own trailing status object.
  local s = string.find(data, '"status":{"lastActivity":"[^"]*"}}}$')
  if s then
    out = string.sub(data, 1, s - 1) .. newStatus
  end
end
local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end
local verified = false
if out then
  local ok2, rec2 = pcall(cjson.decode, out)
  if ok2 and type(rec2) == 'table' and type(rec2.key) == 'table' and type(rec2.key.status) == 'table'
      and rec2.key.status.lastActivity == t then
    rec2.key.status.lastActivity = old
    verified = same(rec, rec2)
  end
end
if not verified then
  return redis.error_reply('ERR keygate activity: unexpected access key record layout; not updated')
end
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return 1
`)

// RecordActivity sets status.lastActivity of each key, named by its digest, to the given time
// (at second precision) unless the stored time is already as new or newer, so that an older or
// concurrent batch never moves it backwards. Digests without a record (deleted keys) are
// skipped, never recreated. Zero times are ignored. Each key is updated atomically on its own;
// the calls are pipelined. On error some keys may have been updated: calling again with the
// same times is harmless.
func (s *Store) RecordActivity(ctx context.Context, times map[string]time.Time) error {
	digests := make([]string, 0, len(times))
	for d, t := range times {
		if !t.IsZero() {
			digests = append(digests, d)
		}
	}
	var errs []error
	for len(digests) > 0 {
		n := min(len(digests), activityBatch)
		if err := s.recordActivity(ctx, digests[:n], times); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		digests = digests[n:]
	}
	if len(errs) > 0 {
		return fmt.Errorf("record access key activity: %w", errors.Join(errs...))
	}
	return nil
}

// recordActivity runs the script for digests in one pipeline. EVALSHA saves sending the script
// each time; keys whose node does not have it cached yet (NOSCRIPT, e.g. after a restart or on
// another Cluster node) are retried with EVAL, which caches it there.
func (s *Store) recordActivity(ctx context.Context, digests []string, times map[string]time.Time) error {
	run := func(ds []string, eval bool) ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(ds))
		for i, d := range ds {
			keys, args := []string{recordKey(d)}, []any{activityTime(times[d])}
			if eval {
				cmds[i] = activityScript.Eval(ctx, pipe, keys, args...)
			} else {
				cmds[i] = activityScript.EvalSha(ctx, pipe, keys, args...)
			}
		}
		_, err := pipe.Exec(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Per-command errors are read from cmds below.
		return cmds, nil
	}
	cmds, err := run(digests, false)
	if err != nil {
		return err
	}
	var retry []string
	var errs []error
	for i, c := range cmds {
		if err := c.Err(); redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, digests[i])
		} else if err != nil {
			errs = append(errs, fmt.Errorf("key %.12s…: %w", digests[i], err))
		}
	}
	if len(retry) > 0 {
		if cmds, err = run(retry, true); err != nil {
			return err
		}
		for i, c := range cmds {
			if err := c.Err(); err != nil {
				errs = append(errs, fmt.Errorf("key %.12s…: %w", retry[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// activityTime is t as metav1.Time writes it: RFC3339 in UTC, whole seconds.
func activityTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}
