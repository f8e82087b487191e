package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// youdenScaled is Youden's J times pos·neg, an integer, so that equal J
// at two cuts compare equal (as floats, 3/10 can exceed 3/10 by a bit).
func youdenScaled(tp, fp, pos, neg int) int64 {
	return int64(tp)*int64(neg) - int64(fp)*int64(pos)
}

// Calibration thresholds. A criterion maximised over held-out scores picks
// a cut between two adjacent distinct scores: the lowest score called
// positive and the highest called negative. Every threshold in that gap
// gives the same counts on those scores; F1Max returns its top (the lowest
// positive score itself), where an unseen positive scoring a hair below it
// is missed. For labelling new images the midpoint of the gap
// is the better choice: it leaves the same margin to both classes.

// F1MaxMidpoint is the largest F1 score over all thresholds and the
// midpoint of the gap in which it holds (see above).
func F1MaxMidpoint(scores []float32, labels []bool) (f1 float64, threshold float32, err error) {
	f1, threshold, _, _, err = bestGap(scores, labels, func(tp, fp, pos, _ int) float64 {
		if tp == 0 {
			return 0
		}
		return 2 * float64(tp) / float64(tp+fp+pos)
	})
	return f1, threshold, err
}

// YoudenMidpoint is the largest Youden's J = sensitivity + specificity − 1
// (the ROC point farthest above the diagonal) and the midpoint of the gap
// in which it holds (see above).
func YoudenMidpoint(scores []float32, labels []bool) (j float64, threshold float32, err error) {
	scaled, threshold, pos, neg, err := bestGap(scores, labels, func(tp, fp, pos, neg int) float64 {
		// Exact while pos·neg < 2^53 (over 10^8 images of each class).
		return float64(youdenScaled(tp, fp, pos, neg))
	})
	if err != nil {
		return 0, 0, err
	}
	return scaled / (float64(pos) * float64(neg)), threshold, nil
}

// bestGap maximises crit over the cuts (the first cut wins ties) and
// returns the midpoint between the lowest score called positive there and
// the next lower distinct score (the lowest score itself when every score
// is called positive), with the class counts.
func bestGap(scores []float32, labels []bool, crit func(tp, fp, pos, neg int) float64) (best float64, threshold float32, pos, neg int, err error) {
	r, err := Rank(scores, labels)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	best = math.Inf(-1)
	var top float32
	open := false // the best cut's gap still needs its lower end
	r.sweep(func(tp, fp int, s float32) {
		if open {
			threshold, open = midpoint(s, top), false
		}
		if v := crit(tp, fp, r.pos, r.neg); v > best {
			best, top, threshold, open = v, s, s, true
		}
	})
	return best, threshold, r.pos, r.neg, nil
}

// midpoint is a threshold halfway between lo < hi that still calls hi
// positive and lo negative (hi itself where float32 has nothing between).
func midpoint(lo, hi float32) float32 {
	m := float32((float64(lo) + float64(hi)) / 2)
	if !(m > lo && m <= hi) { // also NaN, from lo = −∞ and hi = +∞
		return hi
	}
	return m
}

// FormatThreshold prints a threshold with 4 to 6 decimals: as many as it
// has up to 6 (0.5281, 0.500029), so that a threshold a hair above a round
// number does not print as that number; one closer to zero than 0.0001 (a
// model whose scores all sit near zero) prints with 4 significant digits
// (3.2e-07), never as zero.
func FormatThreshold(th float64) string {
	if th != 0 && math.Abs(th) < 1e-4 {
		return strconv.FormatFloat(th, 'g', 4, 64)
	}
	s := strings.TrimRight(fmt.Sprintf("%.6f", th), "0")
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 < 4 {
		s = fmt.Sprintf("%.4f", th)
	}
	return s
}

// Confusion counts the outcomes of calling scores at or above a threshold
// positive.
type Confusion struct {
	TP, FP, TN, FN int
}

// At counts the outcomes at threshold.
func At(scores []float32, labels []bool, threshold float64) (Confusion, error) {
	if len(scores) != len(labels) {
		return Confusion{}, fmt.Errorf("%d scores but %d labels", len(scores), len(labels))
	}
	var c Confusion
	for i, s := range scores {
		pos := float64(s) >= threshold
		switch {
		case pos && labels[i]:
			c.TP++
		case pos:
			c.FP++
		case labels[i]:
			c.FN++
		default:
			c.TN++
		}
	}
	return c, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Sensitivity (recall, true positive rate) is TP / (TP + FN).
func (c Confusion) Sensitivity() float64 { return ratio(c.TP, c.TP+c.FN) }

// Specificity (true negative rate) is TN / (TN + FP).
func (c Confusion) Specificity() float64 { return ratio(c.TN, c.TN+c.FP) }

// Precision is TP / (TP + FP) (0 when nothing is called positive).
func (c Confusion) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// F1 is 2·TP / (2·TP + FP + FN).
func (c Confusion) F1() float64 { return ratio(2*c.TP, 2*c.TP+c.FP+c.FN) }

// Dice equals F1, written for masks: 2|P∩G| / (|P| + |G|).
func (c Confusion) Dice() float64 { return c.F1() }

// IoU is |P∩G| / |P∪G| = TP / (TP + FP + FN).
func (c Confusion) IoU() float64 { return ratio(c.TP, c.TP+c.FP+c.FN) }
