package regularfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "a.png")
	if err := os.WriteFile(reg, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	f, err := Open(link)
	if err != nil {
		t.Fatalf("a link to a regular file: %v", err)
	}
	b := make([]byte, 8)
	if n, _ := f.Read(b); string(b[:n]) != "abc" {
		t.Errorf("read %q, want abc", b[:n])
	}
	f.Close()

	cases := map[string]string{
		fifo:                          "it is a named pipe, not a regular file",
		dir:                           "it is a folder, not a regular file",
		"/dev/zero":                   "it is a character device, not a regular file",
		filepath.Join(dir, "missing"): "no such file",
	}
	for path, want := range cases {
		done := make(chan error, 1)
		go func() { done <- Check(path) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Check(%s) = %v, want an error naming the file and saying %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Check(%s) blocked", path)
		}
	}
}
