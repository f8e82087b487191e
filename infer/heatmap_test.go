package infer

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/imaging"
)

// A caption names the scan and shows the score and the threshold with as
// many decimals as it takes to tell them apart (3 to 6).
func TestCaption(t *testing.T) {
	for _, c := range []struct {
		score, threshold float64
		want             int
	}{
		{0.842, 0.845, 3}, {0.8449, 0.8450, 4}, {0.84501, 0.84502, 5}, {0.5, 0.5, 3}, {0.1234567, 0.1234568, 6},
	} {
		if got := Decimals(c.score, c.threshold, 3); got != c.want {
			t.Errorf("%v vs %v: %d decimals, want %d", c.score, c.threshold, got, c.want)
		}
	}
	if got := caption(Overlay{Score: 0.8449, Threshold: 0.845, Label: "normal"}); got != "score 0.8449  normal  (threshold 0.8450)" {
		t.Errorf("caption %q", got)
	}
	// A threshold not chosen on held-out images says so in the figure.
	if got := caption(Overlay{Score: 0.27, Threshold: 0.5, Label: "normal", Uncalibrated: true}); got != "score 0.270  normal  (threshold 0.500, uncalibrated)" {
		t.Errorf("uncalibrated caption %q", got)
	}
	// A set of figures shares one precision: more than this one needs.
	o := Overlay{Score: 0.2, Threshold: 0.488703, Label: "normal", Decimals: 4}
	if got := caption(o); got != "score 0.2000  normal  (threshold 0.4887)" || thresholdLabel(o) != "0.4887" {
		t.Errorf("caption %q, threshold %q at 4 decimals", got, thresholdLabel(o))
	}
	// The scan's name leads; what the font cannot draw becomes '?', and a
	// long name keeps its two ends, 40 characters in all.
	o = Overlay{Score: 0.7, Threshold: 0.5, Label: "anomalous"}
	for name, want := range map[string]string{
		"018.png":         "018.png",
		"tête\n1\x7f.png": "t?te?1?.png",
		"a\nb.png":        "a?b.png",
		strings.Repeat("x", 30) + "-" + strings.Repeat("y", 30) + ".png": strings.Repeat("x", 18) + "..." + strings.Repeat("y", 15) + ".png",
	} {
		o.Name = name
		if got := caption(o); got != want+"  score 0.700  anomalous  (threshold 0.500)" {
			t.Errorf("name %q: caption %q", name, got)
		}
		if n := len(captionName(name)); n > maxCaptionName {
			t.Errorf("name %q shown in %d characters", name, n)
		}
	}
}

// The panel's legend names the contours drawn and no others.
func TestPanelLegend(t *testing.T) {
	none, some := []bool{false, false}, []bool{false, true}
	for _, c := range []struct {
		truth, pred []bool
		want        string
	}{
		{nil, some, "   (red: predicted)"},
		{nil, none, ""},
		{none, none, ""},
		{none, some, "   (red: predicted)"},
		{some, none, "   (green: true region)"},
		{some, some, "   (green: true region, red: predicted)"},
	} {
		if got := panelLegend(c.truth, c.pred); got != c.want {
			t.Errorf("truth %v pred %v: %q, want %q", c.truth, c.pred, got, c.want)
		}
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
	r := image.Rect(0, 0, colourBarWidth(ts, "0.500"), 200)
	img := image.NewRGBA(r)
	draw.Draw(img, r, image.White, image.Point{}, draw.Src)
	drawColourBar(img, r, 0.5, "0.500", ts)
	y := int(0.5*float64(r.Dy()-1) + 0.5)
	barStart, barEnd := 3*ts, 3*ts+5*ts
	// The tick is the first run of inked pixels on its row.
	tickEnd := -1
	for x := range r.Dx() {
		if img.RGBAAt(x, y) == textColour {
			tickEnd = x
		} else if tickEnd >= 0 {
			break
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

// Odd shapes stay readable: a tall, narrow scan's titles and caption fit
// (tiles as wide as their titles, the picture as wide as its caption), and
// a wide, low scan's colour bar is tall enough for its three labels to
// stand apart, the threshold's moved off the "1" it would touch.
func TestOddShapesReadable(t *testing.T) {
	o := Overlay{Score: 0.50005, Threshold: 0.5000289, Label: "anomalous"}
	tall := imaging.NewRGB(40, 1000)
	amap := make([]float32, 16*16)
	ts := textScale(40, 1000)
	if c := caption(o); !strings.Contains(c, "0.50005") || !strings.Contains(c, "0.50003") {
		t.Fatalf("caption %q", c)
	}
	if h := heatmap(t, tall, amap, 16, o); h.Bounds().Dx() < textWidth(caption(o), ts) {
		t.Errorf("heatmap %v narrower than its caption (%d px)", h.Bounds(), textWidth(caption(o), ts))
	}
	p := panel(t, tall, make([]bool, 40*1000), amap, 16, o)
	if min := 4 * textWidth("region >= 0.50003", ts); p.Bounds().Dx() < min {
		t.Errorf("panel %v: four tiles need %d px for their titles", p.Bounds(), min)
	}
	// Wide and low: the labels' inked rows form three separate bands.
	o.Threshold = 0.95
	wide := imaging.NewRGB(1000, 40)
	h := heatmap(t, wide, make([]float32, 16*16), 16, o)
	ts = textScale(1000, 40)
	x0 := figurePad(ts) + 1000 + 3*ts + 5*ts + 4*ts
	bands, inked := 0, false
	for y := range h.Bounds().Dy() {
		row := false
		for x := x0; x < h.Bounds().Dx(); x++ {
			if h.RGBAAt(x, y) == textColour {
				row = true
				break
			}
		}
		if row && !inked && y > figurePad(ts)+lineHeight(ts) { // below the title line
			bands++
		}
		inked = row
	}
	if bands != 3 {
		t.Errorf("colour bar of a 1000×40 scan: %d separate label bands, want 3 (size %v)", bands, h.Bounds())
	}
}

// Decimals starts where asked and adds digits only while the two print alike.
func TestDecimals(t *testing.T) {
	if d := Decimals(0.50001, 0.50003, 4); d != 5 {
		t.Errorf("0.50001 vs 0.50003 from 4: %d", d)
	}
	if d := Decimals(0.61, 0.5, 4); d != 4 {
		t.Errorf("0.61 vs 0.5 from 4: %d", d)
	}
}

// A white scan keeps its edges on the white page: each tile is framed.
func TestPanelTilesFramed(t *testing.T) {
	white := imaging.NewRGB(64, 64)
	for i := range white.Pix {
		white.Pix[i] = 255
	}
	p := panel(t, white, nil, make([]float32, 16*16), 16, Overlay{Threshold: 0.5, Label: "normal"})
	k := displayScale(64, 64)
	ts := textScale(64*k, 64*k)
	pad := figurePad(ts)
	top := pad + lineHeight(ts) + 6*ts/2
	grey := color.RGBA{190, 190, 190, 255}
	for _, pt := range []image.Point{{pad - 1, top + 10}, {pad + 64*k, top + 10}, {pad + 10, top - 1}, {pad + 10, top + 64*k}} {
		if c := p.RGBAAt(pt.X, pt.Y); c != grey {
			t.Errorf("frame pixel %v: %v", pt, c)
		}
	}
	// The margin is blank to the edge.
	for _, pt := range []image.Point{{0, top + 10}, {pad - 2, top + 10}, {10, 0}} {
		if c := p.RGBAAt(pt.X, pt.Y); c != background {
			t.Errorf("margin pixel %v: %v", pt, c)
		}
	}
	if c := p.RGBAAt(pad+10, top+10); c != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("scan pixel: %v", c)
	}
}

// heatmap is Heatmap, failing the test on error.
func heatmap(t *testing.T, orig *imaging.RGB, amap []float32, size int, o Overlay) *image.RGBA {
	t.Helper()
	img, err := Heatmap(orig, amap, size, o)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// panel is Panel, failing the test on error.
func panel(t *testing.T, orig *imaging.RGB, truth []bool, amap []float32, size int, o Overlay) *image.RGBA {
	t.Helper()
	img, err := Panel(orig, truth, amap, size, o)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// A scan far longer than wide gets text no larger than its short side
// allows, and a figure too large to draw is refused before anything is
// allocated for it.
func TestLongScanFigures(t *testing.T) {
	o := Overlay{Score: 0.7, Threshold: 0.5, Label: "anomalous"}
	amap := make([]float32, 16*16)
	long := imaging.NewRGB(8, 16000)
	h := heatmap(t, long, amap, 16, o)
	p := panel(t, long, nil, amap, 16, o)
	for name, img := range map[string]*image.RGBA{"heatmap": h, "panel": p} {
		if b := img.Bounds(); b.Dx() > 2000 || b.Dy() > 17000 {
			t.Errorf("%s of an 8×16000 scan is %v", name, b)
		}
	}
	if ts := textScale(1, 65500); ts != 2 {
		t.Errorf("text scale of a 1-px-wide scan %d, want 2", ts)
	}
	if ts := textScale(4096, 4096); ts != 16 {
		t.Errorf("text scale of a 4096-px scan %d, want 16", ts)
	}
	// 1×2000000: a caption ~500 px wide beside a scan 2000000 px tall.
	thin := &imaging.RGB{W: 1, H: 2000000} // no pixels: never drawn
	if _, err := Heatmap(thin, amap, 16, o); err == nil || !strings.Contains(err.Error(), "the scan is 1×2000000") || !strings.Contains(err.Error(), "limit of figures") {
		t.Errorf("heatmap of a 1×2000000 scan: %v", err)
	}
	if _, err := Panel(thin, nil, amap, 16, o); err == nil || !strings.Contains(err.Error(), "its panel would be") {
		t.Errorf("panel of a 1×2000000 scan: %v", err)
	}
}

// A ground truth stored as 0/1 marks nothing and says it is faint; one
// stored as 0/255 marks its region; an all-0 one is empty, not faint.
func TestLoadTruthFaint(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		on           uint8
		marked, want bool
	}{{1, false, true}, {255, true, false}, {0, false, false}} {
		m := image.NewGray(image.Rect(0, 0, 4, 4))
		m.Pix[5] = c.on
		p := filepath.Join(dir, fmt.Sprintf("m%d.png", c.on))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, m)
		f.Close()
		truth, faint, err := LoadTruth(p, "scan.png", 4, 4)
		if err != nil || faint != c.want || slices.Contains(truth, true) != c.marked {
			t.Errorf("mask with %d: faint %v marked %v (%v), want faint %v marked %v", c.on, faint, slices.Contains(truth, true), err, c.want, c.marked)
		}
	}
}
