package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, file, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The lowest limit along the process's cgroup path wins, in v2 and v1;
// "max", v1's "unlimited" (9223372036854771712) and missing files are no
// limit.
func TestCgroupLimit(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "memory.max"), "max\n")
	write(t, filepath.Join(root, "job.slice/memory.max"), "8589934592\n")
	write(t, filepath.Join(root, "job.slice/step/memory.max"), "max\n")
	write(t, filepath.Join(root, "memory/docker/abc/memory.limit_in_bytes"), "4294967296\n")
	write(t, filepath.Join(root, "memory/memory.limit_in_bytes"), "9223372036854771712\n")
	for _, c := range []struct {
		self string
		want int64
	}{
		{"0::/job.slice/step\n", 8 << 30},
		{"0::/\n", 0},
		{"0::/elsewhere\n", 0},
		{"4:memory:/docker/abc\n0::/\n", 4 << 30},
		{"4:cpu,memory:/docker/abc\n", 4 << 30},
		{"4:memory:/\n", 0},
		{"3:cpuset:/\n", 0},
		{"garbage", 0},
		{"", 0},
	} {
		if got := cgroupLimit(root, c.self); got != c.want {
			t.Errorf("%q: %d, want %d", c.self, got, c.want)
		}
	}
}

// On this machine Bytes is positive and at most the machine's memory.
func TestBytes(t *testing.T) {
	if b := Bytes(); b <= 0 {
		t.Errorf("Bytes() = %d", b)
	}
}
