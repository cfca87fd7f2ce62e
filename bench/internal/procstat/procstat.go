// Package procstat reads a process's CPU time from /proc, for the benches' CPU figures.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the unit of utime and stime in /proc/<pid>/stat. USER_HZ is 100 on every Linux
// architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const ClockTick = 10 * time.Millisecond

// CPU is a process's utime + stime so far, from /proc/<pid>/stat.
func CPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(pid, string(stat))
}

func parseStat(pid int, stat string) (time.Duration, error) {
	// The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
	rest := stat
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * ClockTick, nil
}
