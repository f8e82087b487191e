package metrics

import "fmt"

// Youden is the threshold that maximises Youden's J = sensitivity +
// specificity − 1 (the ROC point farthest above the diagonal), with J.
// An image is positive when its score is at or above the threshold.
func Youden(scores []float32, labels []bool) (j float64, threshold float32, err error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	j = -1
	r.sweep(labels, func(tp, fp int, at uint32) {
		if v := float64(tp)/float64(r.pos) - float64(fp)/float64(r.neg); v > j {
			j, threshold = v, scores[at]
		}
	})
	return j, threshold, nil
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
