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

// Memory is a process's resident set now (VmRSS) and its peak (VmHWM, since its start or the
// last ResetPeak), in bytes, from /proc/<pid>/status.
func Memory(pid int) (rss, hwm int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, strings.TrimSpace(line), err)
		}
		if name == "VmRSS" {
			rss = kb * 1024
		} else {
			hwm = kb * 1024
		}
	}
	return rss, hwm, nil
}

// ResetPeak sets a process's VmHWM back to its current RSS (Linux 4.0+, clear_refs value 5), so
// that the peak of one phase is not hidden by an earlier, higher one.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// OpenFDs counts a process's open file descriptors.
func OpenFDs(pid int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds), err
}
