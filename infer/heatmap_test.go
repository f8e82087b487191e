package infer

import (
	"image"
	"image/color"
	"image/draw"
	"testing"
)

// A caption shows the score and the threshold with as many decimals as it
// takes to tell them apart (3 to 6).
func TestDistinctDecimals(t *testing.T) {
	for _, c := range []struct {
		score, threshold float64
		want             int
	}{
		{0.842, 0.845, 3}, {0.8449, 0.8450, 4}, {0.84501, 0.84502, 5}, {0.5, 0.5, 3}, {0.1234567, 0.1234568, 6},
	} {
		if got := distinctDecimals(c.score, c.threshold); got != c.want {
			t.Errorf("%v vs %v: %d decimals, want %d", c.score, c.threshold, got, c.want)
		}
	}
	if got := caption(Overlay{Score: 0.8449, Threshold: 0.845, Label: "normal"}); got != "score 0.8449  normal  (threshold 0.8450)" {
		t.Errorf("caption %q", got)
	}
}

// The full stop is a square dot on the baseline, with nothing below it
// (the font's own has a tail and reads as a comma when enlarged).
func TestFullStop(t *testing.T) {
	const scale = 3
	img := image.NewRGBA(image.Rect(0, 0, 7*scale, 13*scale))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	black := color.RGBA{0, 0, 0, 255}
	drawText(img, 0, 0, ".", scale, black)
	for y := range 13 * scale {
		for x := range 7 * scale {
			want := x/scale >= 2 && x/scale <= 3 && y/scale >= 9 && y/scale <= 10
			if got := img.RGBAAt(x, y) == black; got != want {
				t.Fatalf("pixel (%d, %d) inked %v, want %v", x, y, got, want)
			}
		}
	}
}

// A tick crosses the colour bar, and its label starts clear of it: at least
// three text pixels of background between the tick's end and the label.
func TestColourBarTickClearOfLabel(t *testing.T) {
	const ts = 2
	r := image.Rect(0, 0, colourBarWidth(ts), 200)
	img := image.NewRGBA(r)
	draw.Draw(img, r, image.White, image.Point{}, draw.Src)
	drawColourBar(img, r, 0.5, ts)
	y := int(0.5*float64(r.Dy()-1) + 0.5)
	barStart, barEnd := 3*ts, 3*ts+5*ts
	tickEnd, labelStart := -1, -1
	for x := range r.Dx() {
		ink := img.RGBAAt(x, y) == textColour
		switch {
		case ink && labelStart < 0 && (tickEnd < 0 || x == tickEnd+1):
			tickEnd = x
		case ink && labelStart < 0:
			labelStart = x
		}
	}
	if tickEnd < barEnd || img.RGBAAt(barStart, y) != textColour {
		t.Errorf("tick spans to %d, the bar is %d..%d", tickEnd, barStart, barEnd)
	}
	// The label's first inked column on any of its rows.
	first := r.Dx()
	for yy := y - lineHeight(ts)/2; yy < y+lineHeight(ts)/2; yy++ {
		for x := tickEnd + 1; x < r.Dx(); x++ {
			if img.RGBAAt(x, yy) == textColour {
				first = min(first, x)
				break
			}
		}
	}
	if first-tickEnd-1 < 3*ts || first == r.Dx() {
		t.Errorf("label starts at %d, %d px after the tick ends at %d", first, first-tickEnd-1, tickEnd)
	}
}

// A rune the font lacks takes its fallback glyph's place: the dots after
// it sit where they sit after a glyph it has ("≥0.5" beside "X0.5").
func TestFullStopAfterMissingGlyph(t *testing.T) {
	draw1 := func(s string) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, 40, 13))
		draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
		drawText(img, 0, 0, s, 1, color.RGBA{0, 0, 0, 255})
		return img
	}
	a, b := draw1("\u22650.5"), draw1("X0.5")
	for y := range 13 {
		for x := 7; x < 40; x++ {
			if a.RGBAAt(x, y) != b.RGBAAt(x, y) {
				t.Fatalf("pixel (%d, %d) differs after the missing glyph", x, y)
			}
		}
	}
	if b.RGBAAt(16, 10) != (color.RGBA{0, 0, 0, 255}) || b.RGBAAt(16, 12) != (color.RGBA{255, 255, 255, 255}) {
		t.Error("no square dot in the third cell")
	}
}
