package main

import (
	"time"

	"github.com/keygate-dev/keygate/bench/internal/procstat"
)

// usage is what /proc says about a process at one moment.
type usage struct {
	CPU time.Duration // utime + stime since the process started
	RSS int64         // VmRSS, bytes
	HWM int64         // VmHWM (peak RSS since start or since procstat.ResetPeak), bytes
}

// readUsage reads a process's CPU time and memory (bench/internal/procstat).
func readUsage(pid int) (usage, error) {
	var u usage
	var err error
	if u.CPU, err = procstat.CPU(pid); err != nil {
		return u, err
	}
	u.RSS, u.HWM, err = procstat.Memory(pid)
	return u, err
}
