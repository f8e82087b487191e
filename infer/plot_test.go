package infer

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"madclip/metrics"
)

// The threshold's operating point sits where the labels put it: (FPR, TPR)
// on a ROC curve, (recall, precision) on a precision-recall one; none
// where it is undefined.
func TestOperatingPoint(t *testing.T) {
	scores := []float32{0.9, 0.8, 0.7, 0.2}
	labels := []bool{true, false, true, false}
	at, _ := metrics.At(scores, labels, 0.75) // TP 1, FP 1, TN 1, FN 1
	roc := ROCPlot("x", rank(t, scores, labels), 0.75).markAt(at, "threshold 0.75")
	if roc.At == nil || roc.At.X != 0.5 || roc.At.Y != 0.5 || roc.AtLabel != "threshold 0.75" {
		t.Errorf("ROC point %+v", roc.At)
	}
	at, _ = metrics.At(scores, labels, 0.6) // TP 2, FP 1
	pr := PRPlot("x", rank(t, scores, labels), 0.8).markAt(at, "t")
	if pr.At == nil || pr.At.X != 1 || pr.At.Y != 2.0/3 {
		t.Errorf("PR point %+v", pr.At)
	}
	at, _ = metrics.At(scores, labels, 0.95) // nothing called anomalous
	if pr := PRPlot("x", rank(t, scores, labels), 0.8).markAt(at, "t"); pr.At != nil {
		t.Errorf("PR point %+v with no positive call", pr.At)
	}
	if roc := ROCPlot("x", rank(t, scores, labels), 0.75).markAt(at, "t"); roc.At == nil || roc.At.X != 0 || roc.At.Y != 0 {
		t.Errorf("ROC point %+v with no positive call", roc.At)
	}
}

// A plot leaves a white margin on every side: no title or tick label
// touches the picture's edge.
func TestPlotMargin(t *testing.T) {
	scores := []float32{0.9, 0.8, 0.7, 0.2}
	labels := []bool{true, false, true, false}
	at, _ := metrics.At(scores, labels, 0.75)
	for _, c := range []Curve{ROCPlot("a long title that runs wide", rank(t, scores, labels), 0.75), PRPlot("pr", rank(t, scores, labels), 0.8)} {
		path := filepath.Join(t.TempDir(), "p.png")
		if err := PlotCurve(path, c.markAt(at, "threshold 0.75")); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		const m = 6
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if x >= m && x < b.Max.X-m && y >= m && y < b.Max.Y-m {
					continue
				}
				if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
					t.Fatalf("%s: ink at %v, within %d px of the edge", c.Title, image.Pt(x, y), m)
				}
			}
		}
	}
}
