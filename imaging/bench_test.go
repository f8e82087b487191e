package imaging

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"testing"
)

// BenchmarkDecodeJPEG decodes a 512×512 JPEG, colour and grey, with
// libjpeg-turbo (what madclip uses) and with Go's image/jpeg (converted to
// RGB alike); scripts/bench_jpeg.sh prints the ratio.
func BenchmarkDecodeJPEG(b *testing.B) {
	colour := testImage(512, 512)
	grey := image.NewGray(colour.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = colour.Pix[4*i]
	}
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"colour", colour}, {"grey", grey}} {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, c.img, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(c.name+"/libjpeg-turbo", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/image-jpeg", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				img, err := jpeg.Decode(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				FromImage(img)
			}
		})
	}
}

// BenchmarkDecodePNG decodes a 512×512 PNG, colour and grey, with madclip's
// decoder (zlib inflating) and with Go's image/png (converted to RGB
// alike).
func BenchmarkDecodePNG(b *testing.B) {
	colour := testImage(512, 512)
	grey := image.NewGray(colour.Bounds())
	for i := range grey.Pix {
		grey.Pix[i] = colour.Pix[4*i] ^ byte(i*7)
	}
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"colour", colour}, {"grey", grey}} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, c.img); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(c.name+"/zlib", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/image-png", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				img, err := png.Decode(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				FromImage(img)
			}
		})
	}
}
