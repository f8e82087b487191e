package imaging

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"madclip/internal/reftest"
)

func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	s := uint32(12345)
	for y := range h {
		for x := range w {
			s = s*1664525 + 1013904223
			// Smooth structure plus noise, with hard edges: ringing matters.
			v := byte((x*255)/w ^ (y * 7))
			if (x/5+y/7)%2 == 0 {
				v = 255 - v
			}
			img.Set(x, y, color.RGBA{v, byte(s >> 24), byte((x + y) * 3), 255})
		}
	}
	return img
}

// Resize against PIL itself: byte-identical, shrinking and enlarging,
// square and not, colour and grey (which madclip resizes as one channel).
func TestResizeMatchesPIL(t *testing.T) {
	colour := testImage(97, 61)
	grey := image.NewGray(colour.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = colour.Pix[4*i] ^ colour.Pix[4*i+1]
	}
	t.Run("colour", func(t *testing.T) { resizeMatchesPIL(t, colour) })
	t.Run("grey", func(t *testing.T) { resizeMatchesPIL(t, grey) })
}

func resizeMatchesPIL(t *testing.T, img image.Image) {
	py := reftest.Python(t, "PIL")
	dir := t.TempDir()
	src := filepath.Join(dir, "in.png")
	f, _ := os.Create(src)
	png.Encode(f, img)
	f.Close()
	sizes := [][2]int{{240, 240}, {17, 17}, {50, 61}, {97, 30}, {336, 211}, {3, 2}, {97, 61}}
	js, _ := json.Marshal(sizes)
	script := `
import json, sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
for i, (w, h) in enumerate(json.loads(sys.argv[2])):
    im.resize((w, h), Image.BICUBIC).save(f"{sys.argv[3]}/out{i}.png")
    im.convert("L").resize((w, h), Image.NEAREST).save(f"{sys.argv[3]}/near{i}.png")
`
	cmd := exec.Command(py, "-c", script, src, string(js), dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	in, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sizes {
		want, err := Load(filepath.Join(dir, "out"+string(rune('0'+i))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		near, err := Load(filepath.Join(dir, "near"+string(rune('0'+i))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Luma().ResizeNearest(s[0], s[1]); !bytes.Equal(got.Pix, near.Luma().Pix) {
			t.Errorf("nearest resize to %v differs from PIL", s)
		}
		got := in.Resize(s[0], s[1])
		if got.W != want.W || got.H != want.H {
			t.Fatalf("%v: size %dx%d", s, got.W, got.H)
		}
		if !bytes.Equal(got.Pix, want.Pix) {
			diff := 0
			for j := range got.Pix {
				if got.Pix[j] != want.Pix[j] {
					diff++
				}
			}
			t.Errorf("resize to %v: %d of %d bytes differ from PIL", s, diff, len(got.Pix))
		}
	}
}

func TestDecodeKinds(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, img image.Image) string {
		p := filepath.Join(dir, name)
		f, _ := os.Create(p)
		png.Encode(f, img)
		f.Close()
		return p
	}
	g := image.NewGray(image.Rect(0, 0, 2, 1))
	g.Pix = []byte{10, 200}
	g16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	g16.SetGray16(0, 0, color.Gray16{Y: 0x8000})
	rgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	rgba.SetNRGBA(0, 0, color.NRGBA{1, 2, 3, 0}) // alpha is dropped, not composited
	for _, c := range []struct {
		path    string
		r, g, b byte
	}{
		{write("grey.png", g), 10, 10, 10},
		{write("grey16.png", g16), 128, 128, 128},
		{write("rgba.png", rgba), 1, 2, 3},
	} {
		m, err := Load(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if r, gg, b := m.At(0, 0); r != c.r || gg != c.g || b != c.b {
			t.Errorf("%s: got %d %d %d", c.path, r, gg, b)
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	png.Encode(&buf, testImage(20, 20))
	cases := map[string][]byte{
		"text.png":      []byte("this is not an image"),
		"empty.png":     nil,
		"truncated.png": buf.Bytes()[:buf.Len()/2],
		"corrupt.jpg":   append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{7}, 100)...),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.png")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "it is a folder") {
		t.Errorf("folder: %v", err)
	}
}

func TestCrop(t *testing.T) {
	m := FromImage(testImage(10, 7))
	c, err := m.CenterCrop(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	// (10-4)/2 = 3 and (7-4)/2 = 1.5 → 2 (half to even, as torchvision).
	r, g, b := c.At(0, 0)
	wr, wg, wb := m.At(3, 2)
	if r != wr || g != wg || b != wb {
		t.Error("center crop offset")
	}
	if _, err := m.Crop(8, 0, 4, 4); err == nil {
		t.Error("crop outside accepted")
	}
	v := m.CHW()
	if len(v) != 3*70 || v[0] != float32(m.Pix[0])/255 || v[70] != float32(m.Pix[1])/255 {
		t.Error("CHW layout")
	}
}

// The fast paths for RGBA, grey and 16-bit grey give what the generic
// colour-model conversion gives.
func TestFastPathsMatchGeneric(t *testing.T) {
	g16 := image.NewGray16(image.Rect(0, 0, 3, 2))
	for i := range g16.Pix {
		g16.Pix[i] = byte(i * 37)
	}
	rgba := testImage(5, 4)
	rgba.Set(1, 1, color.RGBA{10, 20, 30, 128}) // one translucent pixel
	grey := image.NewGray(image.Rect(0, 0, 7, 5))
	for i := range grey.Pix {
		grey.Pix[i] = byte(i * 11)
	}
	inner := grey.SubImage(image.Rect(2, 1, 6, 4)) // rows shorter than the stride, starting past 0
	for name, img := range map[string]image.Image{"gray16": g16, "rgba": rgba, "gray": grey, "gray inner": inner} {
		fast := FromImage(img)
		generic := FromImage(genericImage{img})
		if !bytes.Equal(fast.Pix, generic.Pix) {
			t.Errorf("%s: fast path differs from the generic conversion", name)
		}
	}
}

// genericImage hides the concrete type, forcing the generic path.
type genericImage struct{ image.Image }

// TestNamedPipe: an image path that is a named pipe is refused at once, not
// waited on.
func TestNamedPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "scan.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), fifo+": it is a named pipe") {
			t.Errorf("named pipe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a named pipe")
	}
}

// ResizeCrop gives Resize's bytes for the region asked, whatever the
// region, and a long scan's centre without resizing it whole.
func TestResizeCrop(t *testing.T) {
	colour := testImage(97, 61)
	grey := image.NewGray(colour.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = colour.Pix[4*i]
	}
	for _, in := range []*RGB{FromImage(colour), FromImage(grey)} {
		for _, c := range []struct {
			w, h int
			r    image.Rectangle
		}{
			{240, 240, image.Rect(8, 8, 232, 232)}, {17, 17, image.Rect(0, 0, 17, 17)}, {97, 61, image.Rect(10, 5, 40, 61)},
			{336, 211, image.Rect(335, 0, 336, 211)}, {50, 200, image.Rect(0, 75, 50, 125)}, {3, 2, image.Rect(1, 1, 3, 2)},
			{97, 30, image.Rect(0, 0, 1, 1)}, {50, 61, image.Rect(3, 4, 50, 61)},
		} {
			full := in.Resize(c.w, c.h)
			want, err := full.Crop(c.r.Min.X, c.r.Min.Y, c.r.Dx(), c.r.Dy())
			if err != nil {
				t.Fatal(err)
			}
			if got := in.ResizeCrop(c.w, c.h, c.r); got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("%dx%d cut to %v differs from Resize and Crop (grey %v)", c.w, c.h, c.r, in.grey())
			}
		}
	}
	// 2×20000 to 56 px wide is 56×560000: only its centre is made.
	long := FromImage(testImage(2, 20000))
	r := CenterRect(56, 560000, 56, 56)
	if got := long.ResizeCrop(56, 560000, r); got.W != 56 || got.H != 56 {
		t.Errorf("centre of a long scan: %dx%d", got.W, got.H)
	}
	small := FromImage(testImage(2, 300))
	full := small.Resize(56, 8400)
	r = CenterRect(56, 8400, 56, 56)
	want, _ := full.Crop(r.Min.X, r.Min.Y, 56, 56)
	if got := small.ResizeCrop(56, 8400, r); !bytes.Equal(got.Pix, want.Pix) {
		t.Error("centre of a 2×300 scan differs from the whole resize's")
	}
	// A region outside the resized image, or pixels short of the size, is
	// a caller's bug: a Go panic, before the C passes read anything.
	for _, c := range []struct {
		m *RGB
		r image.Rectangle
	}{{FromImage(testImage(16, 10)), image.Rect(0, 5, 32, 40)}, {&RGB{W: 16, H: 10, Pix: make([]byte, 10)}, image.Rect(0, 0, 32, 10)}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%dx%d (%d bytes) cut to %v: no panic", c.m.W, c.m.H, len(c.m.Pix), c.r)
				}
			}()
			c.m.ResizeCrop(32, 10, c.r)
		}()
	}
}

// ResizeBytes bounds what Resize allocates, closely enough to tell a
// strip that would take gigabytes from a scan.
func TestResizeBytes(t *testing.T) {
	for _, c := range [][4]int{{512, 512, 240, 240}, {3, 5000, 240, 240}, {4000, 30, 224, 224}, {64, 64, 240, 240}, {240, 240, 240, 240}, {700, 240, 240, 240}} {
		for _, grey := range []bool{false, true} {
			m := NewRGB(c[0], c[1])
			if !grey {
				for i := range m.Pix {
					m.Pix[i] = byte(i * 7)
				}
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			m.Resize(c[2], c[3])
			runtime.ReadMemStats(&after)
			got, est := int64(after.TotalAlloc-before.TotalAlloc), ResizeBytes(c[0], c[1], c[2], c[3])
			// Tight for colour; a grey image takes less (one channel).
			if got > est+est/50 || (!grey && est > 2*got+64<<10) {
				t.Errorf("%d×%d to %d×%d (grey %v): allocated %d bytes, estimate %d", c[0], c[1], c[2], c[3], grey, got, est)
			}
		}
	}
	if b := ResizeBytes(1, 178_000_000, 240, 240); b < 100e9 {
		t.Errorf("a 1×178M strip to 240²: estimate %d bytes", b)
	}
}

// Limits.Reserve is called with the size from the header before the pixels
// are decoded and released when decoding ends, for PNG and JPEG; not for
// an image over the pixel limit.
func TestReserve(t *testing.T) {
	var pb, jb bytes.Buffer
	png.Encode(&pb, image.NewGray(image.Rect(0, 0, 30, 20)))
	jpeg.Encode(&jb, image.NewGray(image.Rect(0, 0, 30, 20)), nil)
	for name, data := range map[string][]byte{"png": pb.Bytes(), "jpeg": jb.Bytes()} {
		var calls, held int
		l := Limits{Reserve: func(w, h int) func() {
			if w != 30 || h != 20 {
				t.Errorf("%s: reserved for %dx%d", name, w, h)
			}
			calls++
			held++
			return func() { held-- }
		}}
		if _, err := decodeLimit(bytes.NewReader(data), l); err != nil || calls != 1 || held != 0 {
			t.Errorf("%s: %v, %d reservations, %d not released", name, err, calls, held)
		}
		l.MaxPixels = 599
		if _, err := decodeLimit(bytes.NewReader(data), l); err == nil || calls != 1 {
			t.Errorf("%s over the limit: %v, %d reservations", name, err, calls)
		}
	}
}
