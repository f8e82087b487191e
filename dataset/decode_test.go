package dataset

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Decoding runs at most `ahead` items beyond the consumer, however many
// items there are, and stop ends it early. inotify counts the files the
// workers open.
func TestDecodeWindow(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)))
	dir := t.TempDir()
	const n, ahead = 60, 4
	items := make([]Sample, n)
	for i := range items {
		p := filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".png")
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		items[i] = Sample{Path: p}
	}
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_OPEN); err != nil {
		t.Skipf("no inotify: %v", err)
	}
	opened := 0
	count := func() int {
		b := make([]byte, 1<<16)
		for {
			k, err := syscall.Read(fd, b)
			if err != nil || k <= 0 {
				return opened
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= k; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&b[off]))
				opened++
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
	ch, stop := Decode(items, 8, DecodeOptions{Ahead: ahead})
	for range 2 {
		if d := <-ch; d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for workers to run ahead, were they allowed
	if got := count(); got > 2+ahead || got < 2 {
		t.Errorf("%d items opened after 2 were taken; the window is %d", got, ahead)
	}
	stop()
	time.Sleep(100 * time.Millisecond)
	afterStop := count()
	if afterStop == n {
		t.Error("stop did not end decoding early")
	}
}
