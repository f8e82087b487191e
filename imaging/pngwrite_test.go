package imaging

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EncodePNG's files decode, with Go's image/png and with madclip's own
// decoder, to the pixels given, for each kind it writes itself and for
// sub-images (a stride wider than the row, an origin other than 0,0).
func TestEncodePNGRoundTrip(t *testing.T) {
	big := testImage(300, 200)
	grey := image.NewGray(big.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = big.Pix[4*i] ^ byte(i)
	}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 31, 17))
	for i := range nrgba.Pix {
		nrgba.Pix[i] = byte(i * 37)
	}
	one := image.NewGray(image.Rect(0, 0, 1, 1))
	one.Pix[0] = 200
	// Noise does not compress: its data spans several IDAT chunks, its
	// rows several blocks.
	noise := image.NewRGBA(image.Rect(0, 0, 700, 600))
	s := uint32(7)
	for i := range noise.Pix {
		s = s*1664525 + 1013904223
		noise.Pix[i] = byte(s >> 24)
		if i%4 == 3 {
			noise.Pix[i] = 255
		}
	}
	cases := []struct {
		name      string
		img       image.Image
		colorType byte
	}{
		{"rgba-opaque", big, 2},
		{"rgba-sub", big.SubImage(image.Rect(17, 9, 250, 101)), 2},
		{"grey", grey, 0},
		{"grey-sub", grey.SubImage(image.Rect(3, 5, 7, 199)), 0},
		{"nrgba", nrgba, 6},
		{"one-pixel", one, 0},
		{"noise", noise, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := EncodePNG(&buf, c.img); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			if got := data[8+4+4+9]; got != c.colorType {
				t.Errorf("colour type %d, want %d", got, c.colorType)
			}
			if c.name == "noise" && bytes.Count(data, []byte("IDAT")) < 2 {
				t.Errorf("%d bytes in one IDAT chunk: want several of at most %d", len(data), pngIDATChunk)
			}
			back, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("image/png refuses it: %v", err)
			}
			if back.Bounds().Size() != c.img.Bounds().Size() {
				t.Fatalf("size %v, want %v", back.Bounds().Size(), c.img.Bounds().Size())
			}
			b, o := c.img.Bounds(), back.Bounds()
			for y := range b.Dy() {
				for x := range b.Dx() {
					want := color.NRGBAModel.Convert(c.img.At(b.Min.X+x, b.Min.Y+y))
					got := color.NRGBAModel.Convert(back.At(o.Min.X+x, o.Min.Y+y))
					if got != want {
						t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got, want)
					}
				}
			}
			if _, ok := c.img.(*image.NRGBA); ok {
				return // madclip's decoder gives RGB: alpha is dropped there
			}
			rgb, err := Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("madclip's decoder refuses it: %v", err)
			}
			if want := FromImage(c.img); !bytes.Equal(rgb.Pix, want.Pix) {
				t.Errorf("madclip's decoder gives other pixels")
			}
		})
	}
}

// PIL opens the files EncodePNG writes and reads the same pixels.
func TestEncodePNGReadByPIL(t *testing.T) {
	dir := t.TempDir()
	img := testImage(97, 61)
	grey := image.NewGray(img.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = img.Pix[4*i+1]
	}
	for name, m := range map[string]image.Image{"rgb.png": img, "grey.png": grey} {
		var buf bytes.Buffer
		if err := EncodePNG(&buf, m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		raw := FromImage(m).Pix
		if err := os.WriteFile(filepath.Join(dir, name+".rgb"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runPIL(t, dir, `
import sys, os
from PIL import Image
d = sys.argv[1]
for name, mode in [("rgb.png", "RGB"), ("grey.png", "L")]:
    im = Image.open(os.path.join(d, name))
    im.load()
    assert im.mode == mode, (name, im.mode)
    want = open(os.path.join(d, name + ".rgb"), "rb").read()
    assert im.convert("RGB").tobytes() == want, name
`)
}

// What EncodePNG does not write itself, image/png does: transparency in
// premultiplied RGBA, 16-bit grey, paletted images.
func TestEncodePNGFallback(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 4, 3))
	draw.Draw(rgba, rgba.Bounds(), image.NewUniform(color.RGBA{100, 50, 0, 128}), image.Point{}, draw.Src)
	g16 := image.NewGray16(image.Rect(0, 0, 5, 2))
	g16.SetGray16(1, 1, color.Gray16{Y: 4097})
	pal := image.NewPaletted(image.Rect(0, 0, 3, 3), color.Palette{color.Black, color.White})
	pal.SetColorIndex(1, 1, 1)
	for _, m := range []image.Image{rgba, g16, pal} {
		var ours, theirs bytes.Buffer
		if err := EncodePNG(&ours, m); err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(&theirs, m); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours.Bytes(), theirs.Bytes()) {
			t.Errorf("%T: not image/png's file", m)
		}
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// A write that fails is an error; so is an empty image.
func TestEncodePNGErrors(t *testing.T) {
	if err := EncodePNG(&failingWriter{n: 100}, testImage(64, 64)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: %v", err)
	}
	if err := EncodePNG(&bytes.Buffer{}, image.NewGray(image.Rect(0, 0, 0, 5))); err == nil || !strings.Contains(err.Error(), "invalid image size") {
		t.Errorf("empty image: %v", err)
	}
}
