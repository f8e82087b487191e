// Package memlimit says how much memory this process may use: the
// machine's, or less where a cgroup (a container, a batch job's slice)
// limits it. Decoding guards and budgets size themselves by it, since a
// process over its cgroup's limit is killed, not told.
package memlimit

import (
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// Bytes is the memory this process may use: the machine's total, or the
// lowest memory limit of its cgroup and the cgroups above it, whichever is
// less; 0 when neither can be read.
func Bytes() int64 {
	machine, cgroup := Sources()
	if cgroup > 0 && (machine == 0 || cgroup < machine) {
		return cgroup
	}
	return machine
}

// Sources are the two figures Bytes takes the lower of: the machine's
// memory and the cgroup limit (0 for none, or where unreadable).
func Sources() (machine, cgroup int64) {
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		machine = int64(si.Totalram) * int64(si.Unit)
	}
	if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		cgroup = cgroupLimit("/sys/fs/cgroup", string(self))
	}
	return machine, cgroup
}

// cgroupLimit is the lowest memory limit along the process's cgroup paths
// in self (the text of /proc/self/cgroup), read under root (where the
// cgroup file systems are mounted): memory.max for cgroup v2 (the "0::"
// line), memory.limit_in_bytes under memory/ for v1. 0 means no limit.
func cgroupLimit(root, self string) int64 {
	var lowest int64
	for _, line := range strings.Split(strings.TrimSpace(self), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var dir, file string
		switch {
		case f[0] == "0" && f[1] == "":
			dir, file = root, "memory.max"
		case strings.Contains(","+f[1]+",", ",memory,"):
			dir, file = path.Join(root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		for p := path.Clean("/" + f[2]); ; p = path.Dir(p) {
			if v := readLimit(path.Join(dir, p, file)); v > 0 && (lowest == 0 || v < lowest) {
				lowest = v
			}
			if p == "/" {
				break
			}
		}
	}
	return lowest
}

// readLimit reads one limit file: a number of bytes, or "max" (none,
// returned as 0, as are v1's "unlimited", a number near 2^63, and a file
// that does not read).
func readLimit(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= 1<<62 {
		return 0
	}
	return v
}
