package imaging

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"madclip/internal/reftest"
	"madclip/internal/testimages"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder users' files go through
// (PNG with zlib, libjpeg-turbo, both across cgo): it must return an image
// or an error, never crash, and never allocate past the pixel limit; a PNG
// that image/png decodes gives its pixels.
func FuzzDecode(f *testing.F) {
	g := image.NewGray(image.Rect(0, 0, 5, 3))
	for i := range g.Pix {
		g.Pix[i] = uint8(40 * i)
	}
	var pb, jb, cb bytes.Buffer
	png.Encode(&pb, g)
	jpeg.Encode(&jb, g, nil)
	rgba := image.NewRGBA(image.Rect(0, 0, 4, 4))
	rgba.Set(1, 1, color.RGBA{200, 10, 10, 255})
	jpeg.Encode(&cb, rgba, &jpeg.Options{Quality: 50})
	for _, seed := range [][]byte{pb.Bytes(), jb.Bytes(), cb.Bytes(), testimages.PNGClaiming(100000, 100000), {0xff, 0xd8, 0xff}, nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) && len(data) < 1<<16 {
			if cfg, err := png.DecodeConfig(bytes.NewReader(data)); err == nil && cfg.Width*cfg.Height <= 1<<16 {
				comparePNG(t, "", data) // what image/png decodes, decodePNG decodes alike
			}
		}
		m, err := decodeLimit(bytes.NewReader(data), Limits{MaxPixels: 1 << 20})
		if err != nil {
			if m != nil {
				t.Fatal("an image and an error")
			}
			return
		}
		if m.W <= 0 || m.H <= 0 || int64(m.W)*int64(m.H) > 1<<20 || len(m.Pix) != 3*m.W*m.H {
			t.Fatalf("decoded %dx%d with %d bytes", m.W, m.H, len(m.Pix))
		}
	})
}

// TestPixelLimit: headers claiming more than the limit are refused before
// decoding, in PNG and in JPEG; the limit can be raised.
func TestPixelLimit(t *testing.T) {
	if _, err := Decode(bytes.NewReader(testimages.PNGClaiming(100000, 100000))); err == nil || !strings.Contains(err.Error(), "100000×100000") {
		t.Errorf("PNG bomb: %v", err)
	}
	var jb bytes.Buffer
	jpeg.Encode(&jb, image.NewGray(image.Rect(0, 0, 30, 20)), nil)
	if _, err := decodeLimit(bytes.NewReader(jb.Bytes()), Limits{MaxPixels: 599}); err == nil || !strings.Contains(err.Error(), "30×20") {
		t.Errorf("JPEG over a 599-pixel limit: %v", err)
	}
	if m, err := decodeLimit(bytes.NewReader(jb.Bytes()), Limits{MaxPixels: 600}); err != nil || m.W != 30 || m.H != 20 {
		t.Errorf("JPEG at the limit: %v", err)
	}
	var pb bytes.Buffer
	png.Encode(&pb, image.NewGray(image.Rect(0, 0, 30, 20)))
	if _, err := decodeLimit(bytes.NewReader(pb.Bytes()), Limits{MaxPixels: 599}); err == nil {
		t.Error("PNG over the limit decoded")
	}
	if _, err := decodeLimit(bytes.NewReader(pb.Bytes()), Limits{MaxPixels: 600}); err != nil {
		t.Errorf("PNG at the limit: %v", err)
	}
}

// TestMemoryLimit: a raised pixel limit still refuses, with an error, an
// image that would need more memory than the machine has (Go's runtime
// would end the process instead).
func TestMemoryLimit(t *testing.T) {
	_, err := decodeLimit(bytes.NewReader(testimages.PNGClaiming(100000, 100000)), Limits{MaxPixels: 1e12})
	if err == nil || !strings.Contains(err.Error(), "110.0 GB") || !strings.Contains(err.Error(), "of memory") {
		t.Errorf("a 10^10-pixel PNG under a raised limit: %v", err)
	}
	// Claims whose bytes overflow 64 bits (2147461015 × 780911375 × 11
	// wraps to about 98 MB) are refused, with the true figure, under the
	// highest limit.
	for _, c := range []struct {
		w, h uint32
		gb   string
	}{{2147461015, 780911375, "18446"}, {1<<31 - 1, 1<<31 - 1, "50728"}} {
		_, err := decodeLimit(bytes.NewReader(testimages.PNGClaiming(c.w, c.h)), Limits{MaxPixels: math.MaxInt64})
		if err == nil || !strings.Contains(err.Error(), "needs about "+c.gb) || !strings.Contains(err.Error(), "of memory") {
			t.Errorf("%d×%d under the highest limit: %v", c.w, c.h, err)
		}
	}
}

// TestScanBomb: a progressive JPEG whose last scan is repeated thousands
// of times (each a pass over the image; legal enough that libjpeg only
// warns) is refused instead of decoded for as long as it takes. The
// progressive file comes from PIL; the original decodes.
func TestScanBomb(t *testing.T) {
	py := reftest.Python(t, "PIL")
	dir := t.TempDir()
	src := filepath.Join(dir, "p.jpg")
	script := `import sys; from PIL import Image
im = Image.new("RGB", (32, 32)); im.putdata([(x * 8 % 256, y * 8 % 256, 90) for y in range(32) for x in range(32)])
im.save(sys.argv[1], progressive=True)`
	if out, err := exec.Command(py, "-c", script, src).CombinedOutput(); err != nil {
		t.Fatalf("PIL: %v: %s", err, out)
	}
	data, _ := os.ReadFile(src)
	if _, err := decodeLimit(bytes.NewReader(data), Limits{}); err != nil {
		t.Fatalf("the progressive original: %v", err)
	}
	last := bytes.LastIndex(data, []byte{0xff, 0xda}) // the last scan, up to EOI
	eoi := bytes.LastIndex(data, []byte{0xff, 0xd9})
	if last < 0 || eoi < last {
		t.Fatal("no scans found")
	}
	bomb := append([]byte(nil), data[:eoi]...)
	for range 1500 {
		bomb = append(bomb, data[last:eoi]...)
	}
	bomb = append(bomb, 0xff, 0xd9)
	_, err := decodeLimit(bytes.NewReader(bomb), Limits{})
	if err == nil || !strings.Contains(err.Error(), "more than 1000 scans") {
		t.Errorf("1,500 repeated scans: %v", err)
	}
}
