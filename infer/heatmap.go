package infer

import (
	_ "embed"
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"

	"madclip/imaging"
)

//go:embed turbo.txt
var turboText string

// turboLUT is the Turbo colour map's 256 published entries, 8-bit.
var turboLUT = func() (lut [256]color.RGBA) {
	i := 0
	for _, line := range strings.Split(turboText, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r, g, b float64
		if _, err := fmt.Sscan(line, &r, &g, &b); err != nil || i >= len(lut) {
			panic("infer/turbo.txt is malformed at entry " + fmt.Sprint(i)) // embedded data: a build defect
		}
		c := func(v float64) uint8 { return uint8(math.Round(255 * v)) }
		lut[i] = color.RGBA{c(r), c(g), c(b), 255}
		i++
	}
	if i != len(lut) {
		panic(fmt.Sprintf("infer/turbo.txt has %d entries, want 256", i))
	}
	return lut
}()

// Turbo maps t in [0, 1] to Google's Turbo colour map: perceptually
// ordered, dark blue (normal) through green to dark red (anomalous). It
// picks the table entry as matplotlib's "turbo" does (256 equal bins), so
// a figure matches the colour bar users know; t outside [0, 1] is clamped.
func Turbo(t float64) color.RGBA {
	if math.IsNaN(t) {
		t = 0
	}
	i := int(math.Floor(math.Max(0, math.Min(1, t)) * 256))
	return turboLUT[min(i, 255)]
}

// Heatmap draws the anomaly map (size×size, values in [0, 1]) over the
// original image at the image's own size: the map is resized bilinearly,
// coloured with Turbo and blended at alpha, and a colour bar from 0 (bottom)
// to 1 (top) sits at the right edge with tick marks at quarters.
func Heatmap(orig *imaging.RGB, amap []float32, size int, alpha float64) *image.RGBA {
	w, h := orig.W, orig.H
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	sx := float64(size) / float64(w)
	sy := float64(size) / float64(h)
	at := func(x, y int) float64 { return float64(amap[y*size+x]) }
	for y := range h {
		fy := math.Max(0, (float64(y)+0.5)*sy-0.5)
		y0 := min(int(fy), size-1)
		y1 := min(y0+1, size-1)
		wy := fy - float64(y0)
		for x := range w {
			fx := math.Max(0, (float64(x)+0.5)*sx-0.5)
			x0 := min(int(fx), size-1)
			x1 := min(x0+1, size-1)
			wx := fx - float64(x0)
			v := (1-wy)*((1-wx)*at(x0, y0)+wx*at(x1, y0)) + wy*((1-wx)*at(x0, y1)+wx*at(x1, y1))
			c := Turbo(v)
			r, g, b := orig.At(x, y)
			blend := func(base uint8, over uint8) uint8 {
				return uint8(math.Round((1-alpha)*float64(base) + alpha*float64(over)))
			}
			out.SetRGBA(x, y, color.RGBA{blend(r, c.R), blend(g, c.G), blend(b, c.B), 255})
		}
	}
	drawColourBar(out)
	return out
}

// drawColourBar paints a vertical Turbo scale near the right edge.
func drawColourBar(img *image.RGBA) {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	bw := max(3, w/30)
	bh := max(8, h*6/10)
	x0 := w - bw - max(2, w/40)
	y0 := (h - bh) / 2
	if x0 < 1 || bh >= h {
		return // too small an image for a bar
	}
	border := color.RGBA{255, 255, 255, 255}
	for y := y0 - 1; y <= y0+bh; y++ {
		for x := x0 - 1; x <= x0+bw; x++ {
			if y == y0-1 || y == y0+bh || x == x0-1 || x == x0+bw {
				img.SetRGBA(x, y, border)
				continue
			}
			v := 1 - float64(y-y0)/float64(bh-1)
			img.SetRGBA(x, y, Turbo(v))
		}
	}
	for q := 0; q <= 4; q++ { // ticks at 0, 0.25, 0.5, 0.75, 1
		y := y0 + (bh-1)*q/4
		for x := x0 - 1 - max(2, bw/2); x < x0-1; x++ {
			img.SetRGBA(x, y, border)
		}
	}
}
