package imaging

import (
	"bytes"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"os"
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
	encode := func(w io.Writer, img image.Image) error { return jpeg.Encode(w, img, &jpeg.Options{Quality: 90}) }
	benchAgainst(b, colour, grey, encode, "libjpeg-turbo", "image-jpeg", jpeg.Decode)
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
	benchAgainst(b, colour, grey, png.Encode, "zlib", "image-png", png.Decode)
}

// benchAgainst times Decode (sub-benchmarks KIND/ours) beside a reference
// decoder followed by FromImage (KIND/theirs), on the colour and the grey
// image as encode writes them.
func benchAgainst(b *testing.B, colour, grey image.Image, encode func(io.Writer, image.Image) error, ours, theirs string, decode func(io.Reader) (image.Image, error)) {
	for _, c := range []struct {
		name string
		img  image.Image
	}{{"colour", colour}, {"grey", grey}} {
		var buf bytes.Buffer
		if err := encode(&buf, c.img); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(c.name+"/"+ours, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/"+theirs, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				img, err := decode(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				FromImage(img)
			}
		})
	}
}

// BenchmarkEncodePNG writes the README's example panel (a figure as
// predict --panel draws it) with madclip's encoder and with Go's image/png.
func BenchmarkEncodePNG(b *testing.B) {
	f, err := os.Open("../docs/example-panel.png")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		b.Fatal(err)
	}
	fig := image.NewRGBA(src.Bounds())
	draw.Draw(fig, fig.Bounds(), src, src.Bounds().Min, draw.Src)
	for _, c := range []struct {
		name   string
		encode func(io.Writer, image.Image) error
	}{{"zlib", EncodePNG}, {"image-png", png.Encode}} {
		b.Run(c.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				var buf bytes.Buffer
				if err := c.encode(&buf, fig); err != nil {
					b.Fatal(err)
				}
				size = buf.Len()
			}
			b.ReportMetric(float64(size)/1024, "KiB/file")
		})
	}
}
