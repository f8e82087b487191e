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

// Memory is what limits this process's memory: the machine's total and
// the lowest memory limit of its cgroup and the cgroups above it (each 0
// where none, or where it cannot be read).
type Memory struct{ Machine, Cgroup int64 }

// Read reads both figures.
func Read() Memory {
	var m Memory
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.Machine = int64(si.Totalram) * int64(si.Unit)
	}
	if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		m.Cgroup = cgroupLimit("/sys/fs/cgroup", string(self))
	}
	return m
}

// Usable is the lower of the two (0 when neither is known).
func (m Memory) Usable() int64 {
	if m.Cgroup > 0 && (m.Machine == 0 || m.Cgroup < m.Machine) {
		return m.Cgroup
	}
	return m.Machine
}

// Bytes is the memory this process may use: Read().Usable().
func Bytes() int64 { return Read().Usable() }

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
