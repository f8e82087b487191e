package dataset

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Decoding runs at most `ahead` items beyond the consumer, however many
// items there are, and stop ends it early. inotify counts the files the
// workers open.
func TestDecodeWindow(t *testing.T) {
	const n, ahead = 60, 4
	dir, items := grayImages(t, n, 8)
	count := openCounter(t, dir)
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

// With originals kept, decoding also stays within a byte budget (read from
// each header), and an image larger than the budget is decoded alone.
func TestDecodeByteBudget(t *testing.T) {
	const n, side = 40, 8
	const each = 3 * side * side // bytes of one original
	dir, items := grayImages(t, n, side)
	count := openCounter(t, dir)
	ch, stop := Decode(items, 8, DecodeOptions{Ahead: 20, KeepOriginal: true, OriginalBytes: 3 * each})
	for range 2 {
		if d := <-ch; d.Err != nil || d.Orig == nil {
			t.Fatal(d.Err)
		}
	}
	time.Sleep(300 * time.Millisecond) // time for workers to run ahead, were they allowed
	// Each decoded image is opened twice (header, then pixels); the feeder
	// may have read one more header while it waits.
	if got := count(); got > 2*(2+3)+1 {
		t.Errorf("%d opens after 2 items were taken: more than 3 originals decoded ahead", got)
	}
	stop()
	ch, stop = Decode(items, 8, DecodeOptions{Ahead: 4, KeepOriginal: true, OriginalBytes: each / 2})
	defer stop()
	i := 0
	for d := range ch {
		if d.Err != nil || d.Index != i || d.Orig == nil {
			t.Fatalf("item %d: index %d, error %v", i, d.Index, d.Err)
		}
		i++
	}
	if i != n {
		t.Errorf("%d of %d items under a budget smaller than one image", i, n)
	}
}

// grayImages writes n black side×side PNGs into a new folder.
// The decodes running at once stay within WorkBytes (each image's
// imaging.DecodeBytes, at most the whole budget): under a budget smaller
// than one image they run one at a time, and every item still comes, in
// order.
func TestDecodeWorkBudget(t *testing.T) {
	const n, side = 30, 16
	_, items := grayImages(t, n, side)
	ch, stop := Decode(items, 8, DecodeOptions{Ahead: 8, WorkBytes: 1})
	defer stop()
	i := 0
	for d := range ch {
		if d.Err != nil || d.Index != i || d.Image.Pixels == nil {
			t.Fatalf("item %d: index %d, error %v", i, d.Index, d.Err)
		}
		i++
	}
	if i != n {
		t.Errorf("%d of %d items", i, n)
	}
}

// byteBudget under contention: what is taken never exceeds the limit, and
// every taker gets through.
func TestByteBudgetContention(t *testing.T) {
	done := make(chan struct{})
	b := newByteBudget(100, done)
	var wg sync.WaitGroup
	var over atomic.Bool
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				release := b.reserve(1, 1+(g*7+k*13)%9) // DecodeBytes: 11 to 99
				b.mu.Lock()
				if b.used > b.limit {
					over.Store(true)
				}
				b.mu.Unlock()
				release()
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("takers still waiting after 20 s")
	}
	if over.Load() {
		t.Error("more than the limit taken at once")
	}
	if b.used != 0 {
		t.Errorf("%d bytes still taken", b.used)
	}
}

func grayImages(t *testing.T, n, side int) (string, []Sample) {
	t.Helper()
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, side, side)))
	dir := t.TempDir()
	items := make([]Sample, n)
	for i := range items {
		p := filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".png")
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		items[i] = Sample{Path: p}
	}
	return dir, items
}

// openCounter counts, with inotify, the files opened in dir since the last
// call; it skips the test where inotify is missing.
func openCounter(t *testing.T, dir string) func() int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_OPEN); err != nil {
		t.Skipf("no inotify: %v", err)
	}
	opened := 0
	return func() int {
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
}
