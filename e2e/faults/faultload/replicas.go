package faultload

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// SkewReplica restarts extauthz replica i (SIGKILL, then a start with the first start's flags)
// with its clock offset by offset (extauthz --testing-clock-offset, the clock its decisions
// and last-use stamps take), or without an offset when it is 0, and returns once it is ready.
func SkewReplica(t *testing.T, i int, offset time.Duration) {
	t.Helper()
	var args []string
	if offset != 0 {
		args = []string{"--testing-clock-offset", offset.String()}
	}
	if err := Platform.KillExtAuthzReplica(i); err != nil {
		t.Errorf("kill extauthz replica %d: %v", i, err)
	}
	if err := Platform.StartExtAuthzReplica(context.Background(), i, args...); err != nil {
		t.Fatalf("start extauthz replica %d %v: %v", i, args, err)
	}
}

// WaitReplicaChecks waits until Envoy has sent extauthz replica i a check (sending the admin
// key's requests meanwhile): a restarted replica is back in the extauthz cluster within one
// health-check interval.
func WaitReplicaChecks(t *testing.T, i int) {
	t.Helper()
	before := ReplicaChecks(i)
	p := &Probe{Name: "admin", Key: Platform.AdminKey, Path: DemoPath + "/version"}
	Eventually(t, time.Minute, fmt.Sprintf("extauthz replica %d gets checks", i), func() error {
		_, _ = Request(context.Background(), p)
		if n := ReplicaChecks(i); n <= before {
			return fmt.Errorf("%d checks, as before", n)
		}
		return nil
	})
}

// ReplicaChecks is extauthz replica i's count of checks answered (its /metrics), 0 if it does
// not answer.
func ReplicaChecks(i int) int64 {
	body, err := scrapeReplica(context.Background(), i)
	if err != nil {
		return 0
	}
	var total int64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "keygate_extauthz_checks_total") {
			continue
		}
		var n float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err == nil {
			total += int64(n)
		}
	}
	return total
}
