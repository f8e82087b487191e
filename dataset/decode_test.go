package dataset

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Decoding runs at most `ahead` items beyond the consumer, however many
// items there are, and stop ends it early. Each item is a named pipe whose
// writer counts the moment a worker opens it.
func TestDecodeWindow(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)))
	dir := t.TempDir()
	const n, ahead = 60, 4
	var opened atomic.Int64
	items := make([]Sample, n)
	for i := range items {
		p := filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".png")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("no named pipes: %v", err)
		}
		items[i] = Sample{Path: p}
		go func() {
			f, err := os.OpenFile(p, os.O_WRONLY, 0) // returns when a worker opens it
			if err != nil {
				return
			}
			opened.Add(1)
			f.Write(buf.Bytes())
			f.Close()
		}()
	}
	ch, stop := Decode(items, 8, DecodeOptions{Ahead: ahead})
	for range 2 {
		if d := <-ch; d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for workers to run ahead, were they allowed
	if got := opened.Load(); got > 2+ahead {
		t.Errorf("%d items opened after 2 were taken; the window is %d", got, ahead)
	}
	stop()
	afterStop := opened.Load()
	// Release the writers still waiting for a reader.
	for _, it := range items {
		if f, err := os.OpenFile(it.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
	if afterStop == n {
		t.Error("stop did not end decoding early")
	}
}
