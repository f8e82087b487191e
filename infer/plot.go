package infer

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/metrics"
)

// CurveKind says what a Curve plots.
type CurveKind int

const (
	ROCCurve CurveKind = iota // true against false positive rate
	PRCurve                   // precision against recall
)

// Curve is one plotted curve with its axes.
type Curve struct {
	Kind           CurveKind
	Title          string
	XLabel, YLabel string
	X, Y           []float64
	// Chance is the no-skill line: the diagonal for a ROC curve, the
	// positive fraction (a horizontal line) for a precision-recall curve.
	Chance []plotter.XY
	// At marks the operating point of the labels' threshold on the curve
	// (nil: none), named in the legend by AtLabel.
	At      *plotter.XY
	AtLabel string
}

// PlotCurve writes c as a 5×5-inch PNG, atomically, with a margin around
// the figure and a legend for the chance line and the threshold's
// operating point.
func PlotCurve(path string, c Curve) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = c.XLabel, c.YLabel
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.02
	pts := make(plotter.XYs, len(c.X))
	for i := range c.X {
		pts[i].X, pts[i].Y = c.X[i], c.Y[i]
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Width = vg.Points(2)
	if c.Kind == PRCurve {
		// Precision holds from one recall to the next, as average
		// precision sums it: steps, not the slopes that would flatter it.
		line.StepStyle = plotter.PreStep
	}
	p.Add(plotter.NewGrid())
	if len(c.Chance) > 0 {
		chance, err := plotter.NewLine(plotter.XYs(c.Chance))
		if err != nil {
			return err
		}
		chance.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(chance)
		p.Legend.Add("chance", chance)
	}
	p.Add(line)
	if c.At != nil {
		at, err := plotter.NewScatter(plotter.XYs{*c.At})
		if err != nil {
			return err
		}
		at.GlyphStyle.Shape = draw.CircleGlyph{}
		at.GlyphStyle.Radius = vg.Points(4.5)
		at.GlyphStyle.Color = color.RGBA{R: 220, G: 30, B: 30, A: 255}
		p.Add(at)
		p.Legend.Add(c.AtLabel, at)
	}
	// The legend where the curves seldom run: bottom right of a ROC curve,
	// bottom left of a precision-recall one.
	p.Legend.Top, p.Legend.Left = false, c.Kind == PRCurve
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(-6), vg.Points(6)
	if p.Legend.Left {
		p.Legend.XOffs = vg.Points(6)
	}
	const size, margin = 5 * vg.Inch, vg.Length(9)
	cv := vgimg.New(size, size)
	p.Draw(draw.Crop(draw.New(cv), margin, -margin, margin, -margin))
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return authorship.EncodePNG(w, cv.Image()) })
}

// curvePoints is the most points a curve keeps for drawing: curves of
// millions of points (pixels) are thinned to this many.
const curvePoints = 4000

// thinning picks, from a curve's length points, about n spread evenly by
// index, always the first and the last, as the points come one by one.
type thinning struct {
	want []int // the indices kept, ascending; nil: every point
	next int
}

func newThinning(length, n int) *thinning {
	t := &thinning{}
	if length <= n {
		return t
	}
	step := float64(length-1) / float64(n-1)
	t.want = make([]int, n)
	for i := range n - 1 {
		t.want[i] = int(float64(i) * step)
	}
	t.want[n-1] = length - 1
	return t
}

// keep says whether the point at index k (asked in ascending order) is kept.
func (t *thinning) keep(k int) bool {
	if t.want == nil {
		return true
	}
	if t.next < len(t.want) && t.want[t.next] == k {
		t.next++
		return true
	}
	return false
}

// ROCPlot is the ROC curve of the ranked scores, titled with its AUROC,
// thinned to curvePoints points.
func ROCPlot(title string, r *metrics.Ranking, auc float64) Curve {
	fpr, tpr := rocCurve(r, curvePoints)
	return Curve{Title: fmt.Sprintf("%s (AUROC %.2f%%)", title, 100*auc), XLabel: "false positive rate", YLabel: "true positive rate",
		X: fpr, Y: tpr, Chance: []plotter.XY{{X: 0, Y: 0}, {X: 1, Y: 1}}}
}

// PRPlot is the precision-recall curve of the ranked scores, titled with
// its average precision, thinned to curvePoints points.
func PRPlot(title string, r *metrics.Ranking, ap float64) Curve {
	recall, precision, pos := prCurve(r, curvePoints)
	return Curve{Kind: PRCurve, Title: fmt.Sprintf("%s (AP %.2f%%)", title, 100*ap), XLabel: "recall", YLabel: "precision",
		X: recall, Y: precision, Chance: []plotter.XY{{X: 0, Y: pos}, {X: 1, Y: pos}}}
}

// rocCurve is the false and true positive rates at every distinct
// threshold, from the highest score down, starting at (0, 0); about n of
// them (see thinning).
func rocCurve(r *metrics.Ranking, n int) (fpr, tpr []float64) {
	return sweepCurve(r, n, [2]float64{0, 0}, func(tp, fp, pos, neg int) (float64, float64) {
		return float64(fp) / float64(neg), float64(tp) / float64(pos)
	})
}

// prCurve is recall and precision at every distinct threshold, from the
// highest score down, starting at recall 0 and precision 1 as scikit-learn
// draws it (about n points, see thinning); pos is the positive fraction.
func prCurve(r *metrics.Ranking, n int) (recall, precision []float64, pos float64) {
	recall, precision = sweepCurve(r, n, [2]float64{0, 1}, func(tp, fp, pos, _ int) (float64, float64) {
		return float64(tp) / float64(pos), float64(tp) / float64(tp+fp)
	})
	return recall, precision, float64(r.Positives()) / float64(r.Positives()+r.Negatives())
}

// sweepCurve is the curve from start through the point at of each
// distinct threshold, thinned to about n points.
func sweepCurve(r *metrics.Ranking, n int, start [2]float64, at func(tp, fp, pos, neg int) (x, y float64)) (xs, ys []float64) {
	t := newThinning(r.Distinct()+1, n)
	t.keep(0)
	xs, ys = []float64{start[0]}, []float64{start[1]}
	k := 0
	r.Sweep(func(tp, fp, pos, neg int) {
		if k++; t.keep(k) {
			x, y := at(tp, fp, pos, neg)
			xs, ys = append(xs, x), append(ys, y)
		}
	})
	return xs, ys
}
