package dataset

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"madclip/imaging"
)

// BenchmarkPrepare times what every scan goes through before the model:
// decoding, conversion to RGB, the bicubic resize to 240 px and the float
// planes, one sub-benchmark per file of $MADCLIP_PREPARE_DIR (a 256-px grey
// PNG of its own when unset). scripts/bench_prepare.sh runs it beside PIL.
func BenchmarkPrepare(b *testing.B) {
	dir := os.Getenv("MADCLIP_PREPARE_DIR")
	if dir == "" {
		dir = b.TempDir()
		g := image.NewGray(image.Rect(0, 0, 256, 256))
		for i := range g.Pix {
			g.Pix[i] = byte(i*7) ^ byte(i>>8)
		}
		f, err := os.Create(filepath.Join(dir, "grey-256.png"))
		if err != nil {
			b.Fatal(err)
		}
		if err := png.Encode(f, g); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no images in %s", dir)
	}
	sort.Strings(files)
	for _, path := range files {
		b.Run(filepath.Base(path), func(b *testing.B) {
			for b.Loop() {
				img, err := imaging.Load(path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Prepare(img, Sample{Path: path}, 240, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
