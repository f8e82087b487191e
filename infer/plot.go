package infer

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

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
// operating point. Curves of millions of points (pixels) are thinned to a
// few thousand for drawing.
func PlotCurve(path string, c Curve) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = c.XLabel, c.YLabel
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.02
	x, y := thin(c.X, c.Y, 4000)
	pts := make(plotter.XYs, len(x))
	for i := range x {
		pts[i].X, pts[i].Y = x[i], y[i]
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
	cv, err := draw.NewFormattedCanvas(size, size, "png")
	if err != nil {
		return err
	}
	p.Draw(draw.Crop(draw.New(cv), margin, -margin, margin, -margin))
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return authorship.MarkPNG(w, func(w io.Writer) error {
			_, err := cv.WriteTo(w)
			return err
		})
	})
}

// thin keeps at most n points of a curve, always the first and last.
func thin(x, y []float64, n int) ([]float64, []float64) {
	if len(x) <= n {
		return x, y
	}
	ox, oy := make([]float64, 0, n+1), make([]float64, 0, n+1)
	step := float64(len(x)-1) / float64(n-1)
	for i := range n {
		j := int(float64(i) * step)
		ox, oy = append(ox, x[j]), append(oy, y[j])
	}
	ox[len(ox)-1], oy[len(oy)-1] = x[len(x)-1], y[len(y)-1]
	return ox, oy
}

// ROCPlot is the ROC curve of scores against labels, titled with its AUROC.
func ROCPlot(title string, scores []float32, labels []bool, auc float64) Curve {
	fpr, tpr := rocCurve(scores, labels)
	return Curve{Title: fmt.Sprintf("%s (AUROC %.2f%%)", title, 100*auc), XLabel: "false positive rate", YLabel: "true positive rate",
		X: fpr, Y: tpr, Chance: []plotter.XY{{X: 0, Y: 0}, {X: 1, Y: 1}}}
}

// PRPlot is the precision-recall curve of scores against labels, titled
// with its average precision.
func PRPlot(title string, scores []float32, labels []bool, ap float64) Curve {
	recall, precision, pos := prCurve(scores, labels)
	return Curve{Kind: PRCurve, Title: fmt.Sprintf("%s (AP %.2f%%)", title, 100*ap), XLabel: "recall", YLabel: "precision",
		X: recall, Y: precision, Chance: []plotter.XY{{X: 0, Y: pos}, {X: 1, Y: pos}}}
}

// prCurve is recall and precision at every distinct threshold, from the
// highest score down, starting at recall 0 and precision 1 as scikit-learn
// draws it; pos is the positive fraction.
func prCurve(scores []float32, labels []bool) (recall, precision []float64, pos float64) {
	recall, precision = []float64{0}, []float64{1}
	// Evaluate checked these scores with AUROC (equal lengths, both
	// classes), so Sweep cannot fail here.
	_ = metrics.Sweep(scores, labels, func(tp, fp, npos, nneg int) {
		recall = append(recall, float64(tp)/float64(npos))
		precision = append(precision, float64(tp)/float64(tp+fp))
		pos = float64(npos) / float64(npos+nneg)
	})
	return recall, precision, pos
}
