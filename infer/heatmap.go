package infer

import (
	_ "embed"
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

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

// Overlay is what a figure says about one prediction besides the map.
type Overlay struct {
	Score     float64 // the image's score in [0, 1]
	Threshold float64 // the label threshold, marked on the colour bar
	Label     string  // "normal" or "anomalous"
	Alpha     float64 // the map's opacity over the scan (0.45 when zero)
	Note      string  // appended to the caption (e.g. the true class)
	// Name is the scan's file name, leading the caption so that a figure
	// shown on its own says which scan it is ("" for none).
	Name string
	// Uncalibrated marks a threshold that was not chosen on held-out
	// images (the 0.5 a checkpoint without valid images falls back to), so
	// that a figure passed on says so.
	Uncalibrated bool
	// Decimals of the score and threshold in the caption; zero chooses the
	// fewest (at least 3) that tell them apart. A set of figures shown
	// together passes one value, so that they print the threshold alike.
	Decimals int
}

func (o Overlay) decimals() int {
	if o.Decimals > 0 {
		return o.Decimals
	}
	return Decimals(o.Score, o.Threshold, 3)
}

func (o Overlay) alpha() float64 {
	if o.Alpha == 0 {
		return 0.45
	}
	return o.Alpha
}

// MinDisplay is the smallest side a figure shows a scan at: smaller scans
// are enlarged by an integer factor (nearest neighbour, every pixel kept
// as a square) so that a 64-px input is not a 64-px picture.
const MinDisplay = 512

// displayScale is the integer enlargement of a w×h scan for figures.
func displayScale(w, h int) int {
	return max(1, (MinDisplay+max(w, h)-1)/max(w, h))
}

// Heatmap draws the anomaly map (size×size, values in [0, 1]) over the
// scan, enlarged for display when small, with a title line (score, label,
// threshold) above and the colour bar beside the picture, outside it, with
// ticks at 0, the threshold and 1. A figure over MaxFigurePixels is an
// error, before anything is drawn.
func Heatmap(orig *imaging.RGB, amap []float32, size int, o Overlay) (*image.RGBA, error) {
	l := newHeatmapLayout(orig, o)
	if err := figureFits("heatmap", orig, l.cw, l.ch); err != nil {
		return nil, err
	}
	k, w, h, ts, pad, top, bar, barH := l.k, l.w, l.h, l.ts, l.pad, l.top, l.bar, l.barH
	title := caption(o)
	out := canvas(l.cw, l.ch)
	v := resizeMap(amap, size, w, h)
	blendMap(out, image.Pt(pad, top), orig, k, v, o.alpha())
	drawColourBar(out, image.Rect(pad+w, top, pad+w+bar, top+barH), o.Threshold, thresholdLabel(o), ts)
	drawText(out, pad, pad, title, ts, textColour)
	return out, nil
}

// heatmapLayout is where a heatmap's parts go: the scan's enlargement k
// and displayed size w×h, the text scale, the margin, the top of the
// picture, the colour bar's width and height, and the figure's size cw×ch.
type heatmapLayout struct{ k, w, h, ts, pad, top, bar, barH, cw, ch int }

func newHeatmapLayout(orig *imaging.RGB, o Overlay) heatmapLayout {
	l := heatmapLayout{k: displayScale(orig.W, orig.H)}
	l.w, l.h = orig.W*l.k, orig.H*l.k
	l.ts = textScale(l.w, l.h)
	l.pad = figurePad(l.ts)
	l.top = l.pad + lineHeight(l.ts) + 4*l.ts/2
	l.bar = colourBarWidth(l.ts, thresholdLabel(o))
	l.barH = max(l.h, minBarHeight(l.ts))
	l.cw, l.ch = 2*l.pad+max(l.w+l.bar, textWidth(caption(o), l.ts)+l.ts), l.top+l.barH+l.pad
	return l
}

// HeatmapFits says whether Heatmap would draw the figure of this scan
// within MaxFigurePixels, without drawing it: a command that writes
// several figures checks them all first.
func HeatmapFits(orig *imaging.RGB, o Overlay) error {
	l := newHeatmapLayout(orig, o)
	return figureFits("heatmap", orig, l.cw, l.ch)
}

// figurePad is the blank margin around a figure's content, so that no
// label touches the picture's edge.
func figurePad(ts int) int { return 4 * ts }

// MaxFigurePixels bounds a heatmap or panel (2 GiB of RGBA): the figure of a
// scan far longer than wide, or of a huge one, is refused rather than
// drawn at a size no viewer opens.
const MaxFigurePixels = 1 << 29

// figureFits refuses a figure of w×h pixels over MaxFigurePixels.
func figureFits(kind string, orig *imaging.RGB, w, h int) error {
	if int64(w)*int64(h) > MaxFigurePixels {
		return fmt.Errorf("its %s would be %d×%d pixels (the scan is %d×%d), over the %d-pixel limit of figures", kind, w, h, orig.W, orig.H, MaxFigurePixels)
	}
	return nil
}

// PredictedMask is the predicted region at the scan's own size
// (PredictedRegion): 255 inside, else 0.
func PredictedMask(orig *imaging.RGB, amap []float32, size int, threshold float64) *image.Gray {
	region := PredictedRegion(amap, size, orig.W, orig.H, threshold)
	m := image.NewGray(image.Rect(0, 0, orig.W, orig.H))
	for i, in := range region {
		if in {
			m.Pix[i] = 255
		}
	}
	return m
}

// PredictedRegion is where the anomaly map (size×size) reaches the
// threshold, on a w×h scan: the pixels where the map, resized bilinearly,
// reaches it, and the pixel that holds the centre of each map pixel that
// reaches it. Resizing can lower a narrow peak below the threshold (a
// smaller scan averages it away, a larger one interpolates beside it);
// the second rule keeps it, so that a scan labelled anomalous by its map's
// maximum always shows a region.
func PredictedRegion(amap []float32, size, w, h int, threshold float64) []bool {
	v := resizeMap(amap, size, w, h)
	region := make([]bool, w*h)
	for i, x := range v {
		region[i] = x >= threshold
	}
	for y := range size {
		sy := min(h-1, (2*y+1)*h/(2*size)) // the scan row holding the centre of map row y
		for x := range size {
			if float64(amap[y*size+x]) >= threshold {
				region[sy*w+min(w-1, (2*x+1)*w/(2*size))] = true
			}
		}
	}
	return region
}

// Panel is the figure of one prediction: the scan | the ground truth (when
// truth is not nil: a w×h mask of the scan's size, true inside) | the
// heatmap | the predicted region at the threshold drawn as a contour over
// the scan (with the true region's contour when known), each titled, the
// colour bar at the right and the scan's name, score and label below.
//
// A figure over MaxFigurePixels is an error, before anything is drawn.
func Panel(orig *imaging.RGB, truth []bool, amap []float32, size int, o Overlay) (*image.RGBA, error) {
	l := newPanelLayout(orig, truth != nil, o)
	if err := l.fits(orig, o); err != nil {
		return nil, err
	}
	k, w, h, ts, gap, pad, top, tw, bar, barH, titles := l.k, l.w, l.h, l.ts, l.gap, l.pad, l.top, l.tw, l.bar, l.barH, l.titles
	v := resizeMap(amap, size, w, h)
	// The region drawn is the one --mask writes, at the scan's size,
	// enlarged as the scan is.
	pred := enlargeMask(PredictedRegion(amap, size, orig.W, orig.H, o.Threshold), orig.W, orig.H, k)
	note := caption(o) + panelLegend(truth, pred)
	out := canvas(l.size(note))
	var gt []bool
	if truth != nil {
		gt = enlargeMask(truth, orig.W, orig.H, k)
	}
	x := pad
	tile := func(title string, draw func(at image.Point)) {
		drawText(out, x, pad, title, ts, textColour)
		draw(image.Pt(x, top))
		frame(out, image.Rect(x, top, x+w, top+h))
		x += tw + gap
	}
	tile(titles[0], func(at image.Point) { drawScan(out, at, orig, k) })
	if truth != nil {
		tile(titles[1], func(at image.Point) {
			drawScan(out, at, orig, k)
			tint(out, at, w, h, gt, truthColour)
		})
	}
	tile(titles[len(titles)-2], func(at image.Point) { blendMap(out, at, orig, k, v, o.alpha()) })
	tile(titles[len(titles)-1], func(at image.Point) {
		drawScan(out, at, orig, k)
		if gt != nil {
			contour(out, at, w, h, gt, truthColour, ts)
		}
		contour(out, at, w, h, pred, predictedColour, ts)
	})
	drawColourBar(out, image.Rect(x, top, x+bar, top+barH), o.Threshold, thresholdLabel(o), ts)
	drawText(out, pad, top+barH+gap, note, ts, textColour)
	return out, nil
}

// panelLayout is where a panel's parts go: the scan's enlargement k and
// displayed size w×h, the text scale, the gaps and margin, the tiles'
// width and titles, the colour bar's width and height.
type panelLayout struct {
	k, w, h, ts, gap, pad, top, bottom, tw, bar, barH int
	titles                                            []string
}

func newPanelLayout(orig *imaging.RGB, withTruth bool, o Overlay) panelLayout {
	l := panelLayout{k: displayScale(orig.W, orig.H)}
	l.w, l.h = orig.W*l.k, orig.H*l.k
	l.titles = []string{"scan", "ground truth", "anomaly map", "region >= " + thresholdLabel(o)}
	if !withTruth {
		l.titles = slices.Delete(l.titles, 1, 2)
	}
	// The text grows with the figure's width too: a row of tiles shown at
	// a page's width must keep its caption legible.
	l.ts = min(max(textScale(l.w, l.h), len(l.titles)*l.w/panelWidthPerTextScale), maxTextScale(l.w, l.h))
	l.gap = 6 * l.ts / 2
	l.pad = figurePad(l.ts)
	l.top = l.pad + lineHeight(l.ts) + l.gap
	l.bottom = lineHeight(l.ts) + l.gap + l.pad
	// A tile is as wide as the scan or its title, whichever is wider (a
	// tall, narrow scan must not overprint its neighbours' titles).
	l.tw = l.w
	for _, t := range l.titles {
		l.tw = max(l.tw, textWidth(t, l.ts)+2)
	}
	l.bar = colourBarWidth(l.ts, thresholdLabel(o))
	l.barH = max(l.h, minBarHeight(l.ts))
	return l
}

// size is the panel's size with the caption note.
func (l panelLayout) size(note string) (w, h int) {
	return 2*l.pad + max(len(l.titles)*(l.tw+l.gap)+l.bar, textWidth(note, l.ts)+l.ts), l.top + l.barH + l.bottom
}

// PanelFits says whether Panel would draw the figure of this scan (with a
// ground-truth tile or not) within MaxFigurePixels, without drawing it: a
// command that writes several figures checks them all first.
func PanelFits(orig *imaging.RGB, withTruth bool, o Overlay) error {
	return newPanelLayout(orig, withTruth, o).fits(orig, o)
}

// fits checks the panel's size with the longest caption (its legend is
// known once the region is).
func (l panelLayout) fits(orig *imaging.RGB, o Overlay) error {
	w, h := l.size(caption(o) + panelLegend([]bool{true}, []bool{true}))
	return figureFits("panel", orig, w, h)
}

// panelWidthPerTextScale is the panel width, in pixels, per step of the
// text's scale: at 600 a four-tile panel of 512-px scans, shown 900 px wide,
// prints its caption about 16 px tall.
const panelWidthPerTextScale = 600

// panelLegend names the contours a panel draws, and only those: a normal
// scan has no true region, a low map no predicted one, a panel without
// ground truth neither a true region nor its tile.
func panelLegend(truth, pred []bool) string {
	var legend []string
	if slices.Contains(truth, true) {
		legend = append(legend, "green: true region")
	}
	if slices.Contains(pred, true) {
		legend = append(legend, "red: predicted")
	}
	if len(legend) == 0 {
		return ""
	}
	return "   (" + strings.Join(legend, ", ") + ")"
}

var (
	background      = color.RGBA{255, 255, 255, 255}
	textColour      = color.RGBA{20, 20, 20, 255}
	truthColour     = color.RGBA{0, 200, 60, 255}
	predictedColour = color.RGBA{230, 20, 20, 255}
)

func caption(o Overlay) string {
	d := o.decimals()
	s := fmt.Sprintf("score %.*f  %s  (threshold %.*f)", d, o.Score, o.Label, d, o.Threshold)
	if o.Uncalibrated {
		s = strings.TrimSuffix(s, ")") + ", uncalibrated)"
	}
	if o.Name != "" {
		s = captionName(o.Name) + "  " + s
	}
	if o.Note != "" {
		s += "  " + o.Note
	}
	return s
}

// maxCaptionName is the most characters of a file name a caption shows.
const maxCaptionName = 40

// captionName is a file name as a caption prints it: characters the
// figure's font cannot draw as themselves become '?', and a long name keeps
// its start and end around "...".
func captionName(name string) string {
	r := []rune(name)
	for i, c := range r {
		if c < 0x20 || c > 0x7e {
			r[i] = '?'
		}
	}
	if len(r) > maxCaptionName {
		keep := maxCaptionName - 3
		r = slices.Concat(r[:keep/2], []rune("..."), r[len(r)-(keep-keep/2):])
	}
	return string(r)
}

// thresholdLabel is the threshold as the caption prints it, for the colour
// bar and the region's title.
func thresholdLabel(o Overlay) string {
	return fmt.Sprintf("%.*f", o.decimals(), o.Threshold)
}

// Decimals is the number of decimals, least to 6, at which a score and the
// threshold print differently when they differ, so that no output reads
// "score 0.845 normal (threshold 0.845)".
func Decimals(score, threshold float64, least int) int {
	d := least
	for d < 6 && score != threshold && fmt.Sprintf("%.*f", d, score) == fmt.Sprintf("%.*f", d, threshold) {
		d++
	}
	return d
}

// LoadTruth reads a ground-truth mask for a w×h scan: true where its grey
// level (PIL's convert("L")) is above half.
//
// faint says the mask marks nothing though some of its pixels are not 0:
// most likely a mask stored as 0/1 rather than 0/255, which reads as empty
// (as in the authors' code).
func LoadTruth(path, scan string, w, h int) (truth []bool, faint bool, err error) {
	g, err := imaging.LoadMask(path, scan, w, h)
	if err != nil {
		return nil, false, err
	}
	truth = make([]bool, w*h)
	marked, nonzero := false, false
	for i, v := range g.Pix {
		truth[i] = v >= 128
		marked = marked || truth[i]
		nonzero = nonzero || v != 0
	}
	return truth, nonzero && !marked, nil
}

func canvas(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:i+4], []byte{background.R, background.G, background.B, 255})
	}
	return img
}

// resizeMap resamples a size×size map to w×h bilinearly (half-pixel
// centres, edges clamped), as the heatmap shows it.
func resizeMap(amap []float32, size, w, h int) []float64 {
	out := make([]float64, w*h)
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
			out[y*w+x] = (1-wy)*((1-wx)*at(x0, y0)+wx*at(x1, y0)) + wy*((1-wx)*at(x0, y1)+wx*at(x1, y1))
		}
	}
	return out
}

// frame draws a one-pixel grey line just outside r, so that a white scan
// keeps its edges on the white page.
func frame(dst *image.RGBA, r image.Rectangle) {
	grey := color.RGBA{190, 190, 190, 255}
	for x := r.Min.X - 1; x <= r.Max.X; x++ {
		dst.SetRGBA(x, r.Min.Y-1, grey)
		dst.SetRGBA(x, r.Max.Y, grey)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		dst.SetRGBA(r.Min.X-1, y, grey)
		dst.SetRGBA(r.Max.X, y, grey)
	}
}

// drawScan copies the scan, enlarged k times, to dst at p.
func drawScan(dst *image.RGBA, p image.Point, orig *imaging.RGB, k int) {
	for y := range orig.H * k {
		for x := range orig.W * k {
			r, g, b := orig.At(x/k, y/k)
			dst.SetRGBA(p.X+x, p.Y+y, color.RGBA{r, g, b, 255})
		}
	}
}

// blendMap draws the scan enlarged k times with the map v (at the enlarged
// size) in Turbo over it at opacity alpha.
func blendMap(dst *image.RGBA, p image.Point, orig *imaging.RGB, k int, v []float64, alpha float64) {
	w := orig.W * k
	blend := func(base, over uint8) uint8 {
		return uint8(math.Round((1-alpha)*float64(base) + alpha*float64(over)))
	}
	for y := range orig.H * k {
		for x := range w {
			c := Turbo(v[y*w+x])
			r, g, b := orig.At(x/k, y/k)
			dst.SetRGBA(p.X+x, p.Y+y, color.RGBA{blend(r, c.R), blend(g, c.G), blend(b, c.B), 255})
		}
	}
}

func enlargeMask(m []bool, w, h, k int) []bool {
	out := make([]bool, w*k*h*k)
	for y := range h * k {
		for x := range w * k {
			out[y*w*k+x] = m[(y/k)*w+x/k]
		}
	}
	return out
}

// tint shades the pixels of region (w×h at p) with c at half opacity.
func tint(dst *image.RGBA, p image.Point, w, h int, region []bool, c color.RGBA) {
	for y := range h {
		for x := range w {
			if region[y*w+x] {
				o := dst.RGBAAt(p.X+x, p.Y+y)
				mix := func(a, b uint8) uint8 { return uint8((int(a) + int(b)) / 2) }
				dst.SetRGBA(p.X+x, p.Y+y, color.RGBA{mix(o.R, c.R), mix(o.G, c.G), mix(o.B, c.B), 255})
			}
		}
	}
}

// contour draws the boundary of region (w×h at p): its pixels with a
// 4-neighbour outside it or on the picture's edge, thickened for large
// pictures.
func contour(dst *image.RGBA, p image.Point, w, h int, region []bool, c color.RGBA, ts int) {
	in := func(x, y int) bool { return x >= 0 && y >= 0 && x < w && y < h && region[y*w+x] }
	r := max(1, ts/2)
	for y := range h {
		for x := range w {
			if !in(x, y) || (in(x-1, y) && in(x+1, y) && in(x, y-1) && in(x, y+1)) {
				continue
			}
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					if in(x+dx, y+dy) || (dx == 0 && dy == 0) {
						dst.SetRGBA(p.X+x+dx, p.Y+y+dy, c)
					}
				}
			}
		}
	}
}

// textScale is the enlargement of the 7×13 font for a picture w×h pixels:
// readable at the size the picture is shown (one step per 256 px of
// height), within maxTextScale.
func textScale(w, h int) int { return min(max(2, h/256), maxTextScale(w, h)) }

// maxTextScale bounds the text of a picture by its short side: a scan
// 1 px wide and 65,500 tall would otherwise get letters hundreds of pixels
// high and a caption as wide as the scan is tall.
func maxTextScale(w, h int) int { return max(2, min(w, h)/32) }

func lineHeight(ts int) int { return 13 * ts }

// textWidth is the width of s drawn at scale ts (the font is 7 px wide).
func textWidth(s string, ts int) int { return utf8.RuneCountInString(s) * 7 * ts }

// colourBarWidth is the width of the colour bar with its labels, the
// threshold's among them.
func colourBarWidth(ts int, thresholdLabel string) int {
	return 12*ts + max(textWidth("0.000", ts), textWidth(thresholdLabel, ts))
}

// minBarHeight keeps the colour bar's three labels apart on a wide, low
// scan.
func minBarHeight(ts int) int { return 4 * lineHeight(ts) }

// drawColourBar draws, inside r, a vertical Turbo scale from 0 (bottom) to
// 1 (top) with ticks and labels at 0, the threshold and 1; the threshold's
// label moves off the end labels when its tick is near them.
func drawColourBar(img *image.RGBA, r image.Rectangle, threshold float64, label string, ts int) {
	bw := 5 * ts
	x0 := r.Min.X + 3*ts
	h := r.Dy()
	lh := lineHeight(ts)
	for y := range h {
		c := Turbo(1 - float64(y)/float64(max(h-1, 1)))
		for x := x0; x < x0+bw; x++ {
			img.SetRGBA(x, r.Min.Y+y, c)
		}
	}
	// A tick crosses the bar, overhanging it by ts on each side; its label
	// stands clear of it, so "0.45" does not read as "-0.45".
	tick := func(v float64, label string, lo, hi int) {
		y := r.Min.Y + int(math.Round((1-v)*float64(h-1)))
		for x := x0 - ts; x < x0+bw+ts; x++ {
			for t := 0; t < max(1, ts/2); t++ {
				img.SetRGBA(x, min(y+t, r.Max.Y-1), textColour)
			}
		}
		drawText(img, x0+bw+4*ts, min(max(y-lh/2, lo), hi), label, ts, textColour)
	}
	tick(1, "1", r.Min.Y, r.Min.Y)
	tick(0, "0", r.Max.Y-lh, r.Max.Y-lh)
	if threshold > 0 && threshold < 1 {
		tick(threshold, label, r.Min.Y+lh, r.Max.Y-2*lh)
	}
}

// drawText writes s with its top-left corner at (x, y) in the 7×13 bitmap
// font enlarged scale times, clipped to img.
func drawText(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	face := basicfont.Face7x13
	adv := font.MeasureString(face, s).Ceil()
	if adv == 0 {
		return
	}
	small := image.NewAlpha(image.Rect(0, 0, adv, 13))
	d := &font.Drawer{Dst: small, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(s)
	// The font's full stop has a tail and reads as a comma when enlarged:
	// draw a square dot on the baseline instead. Every rune advances the
	// pen as the Drawer moves it (a rune the font lacks gets its fallback
	// glyph's width).
	x0 := 0
	for _, r := range s {
		step, _ := face.GlyphAdvance(r)
		if r == '.' {
			for sy := range 13 {
				for sx := range 7 {
					a := color.Alpha{}
					if sx >= 2 && sx <= 3 && sy >= face.Ascent-2 && sy < face.Ascent {
						a.A = 255
					}
					small.SetAlpha(x0+sx, sy, a)
				}
			}
		}
		x0 += step.Round()
	}
	b := img.Bounds()
	for sy := range 13 {
		for sx := range adv {
			if small.AlphaAt(sx, sy).A < 128 {
				continue
			}
			for dy := range scale {
				for dx := range scale {
					px, py := x+sx*scale+dx, y+sy*scale+dy
					if image.Pt(px, py).In(b) {
						img.SetRGBA(px, py, c)
					}
				}
			}
		}
	}
}
