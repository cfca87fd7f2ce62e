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

// Sched is what the kernel's scheduler says about a process's threads (/proc/<pid>/task/*/
// schedstat): how long they waited runnable for a CPU, and how many times they were given one.
// A thread that already exited is not counted.
type Sched struct {
	Wait   time.Duration
	Slices int64
}

// ReadSched sums /proc/<pid>/task/*/schedstat.
func ReadSched(pid int) (Sched, error) {
	var s Sched
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		f := strings.Fields(string(data))
		if len(f) < 3 {
			return s, fmt.Errorf("/proc/%d/task/%s/schedstat: %q", pid, t.Name(), data)
		}
		wait, err1 := strconv.ParseInt(f[1], 10, 64)
		slices, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return s, fmt.Errorf("/proc/%d/task/%s/schedstat: %q", pid, t.Name(), data)
		}
		s.Wait += time.Duration(wait)
		s.Slices += slices
	}
	return s, nil
}
