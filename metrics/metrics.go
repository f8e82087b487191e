// Package metrics scores anomaly detectors: AUROC, average precision and
// F1-max, computed exactly as scikit-learn does (ties handled by treating
// equal scores as one threshold), fast enough for tens of millions of
// pixels; label thresholds (F1-max, Youden) with their confusion counts and
// Dice/IoU (threshold.go); and the per-region overlap PRO with its area
// AUPRO (pro.go).
package metrics

import (
	"errors"
	"fmt"
	"math"
)

// ErrOneClass is returned when the labels hold only one class.
var ErrOneClass = errors.New("only one class present; the metric is undefined")

// ranked holds the order of the scores, descending, and the class counts.
type ranked struct {
	order    []uint32 // indices by descending score
	keys     []uint32 // sortable keys of the scores, in the same order
	pos, neg int
}

// sortableKey maps a float32 to a uint32 whose unsigned order is the
// float's order (negative zero equals zero).
func sortableKey(f float32) uint32 {
	if f == 0 {
		f = 0
	}
	b := math.Float32bits(f)
	if b&0x80000000 != 0 {
		return ^b
	}
	return b | 0x80000000
}

// rank validates the input and sorts it by descending score with an LSD
// radix sort (four 8-bit passes): linear time and no comparisons.
func rank(scores []float32, labels []bool) (*ranked, error) {
	if len(scores) != len(labels) {
		return nil, fmt.Errorf("%d scores but %d labels", len(scores), len(labels))
	}
	if len(scores) == 0 {
		return nil, errors.New("no scores")
	}
	if len(scores) > math.MaxUint32 {
		return nil, errors.New("too many scores (at most 2^32)")
	}
	r := &ranked{}
	keys := make([]uint32, len(scores))
	for i, s := range scores {
		if s != s {
			return nil, fmt.Errorf("score %d is NaN", i)
		}
		keys[i] = ^sortableKey(s) // descending
		if labels[i] {
			r.pos++
		} else {
			r.neg++
		}
	}
	if r.pos == 0 || r.neg == 0 {
		return nil, ErrOneClass
	}
	n := len(keys)
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = uint32(i)
	}
	tmpK := make([]uint32, n)
	tmpI := make([]uint32, n)
	for shift := 0; shift < 32; shift += 8 {
		var count [257]int
		for _, k := range keys {
			count[(k>>shift)&0xff+1]++
		}
		if count[1] == n { // every key has the same byte here
			continue
		}
		for b := 1; b < 257; b++ {
			count[b] += count[b-1]
		}
		for i, k := range keys {
			d := (k >> shift) & 0xff
			tmpK[count[d]] = k
			tmpI[count[d]] = idx[i]
			count[d]++
		}
		keys, tmpK = tmpK, keys
		idx, tmpI = tmpI, idx
	}
	r.order, r.keys = idx, keys
	return r, nil
}

// sweep calls f once per distinct threshold, from the highest score down,
// with the true and false positives at and above it and the index of a
// score equal to the threshold.
func (r *ranked) sweep(labels []bool, f func(tp, fp int, at uint32)) {
	tp, fp := 0, 0
	for i := 0; i < len(r.order); {
		j := i
		for j < len(r.order) && r.keys[j] == r.keys[i] {
			if labels[r.order[j]] {
				tp++
			} else {
				fp++
			}
			j++
		}
		f(tp, fp, r.order[i])
		i = j
	}
}

// Sweep calls f once per distinct score, from the highest down, with the
// true and false positives at or above it and the class totals: the points
// of the ROC and precision-recall curves. It fails as AUROC does (one class,
// NaN scores), without calling f.
func Sweep(scores []float32, labels []bool, f func(tp, fp, pos, neg int)) error {
	r, err := rank(scores, labels)
	if err != nil {
		return err
	}
	r.sweep(labels, func(tp, fp int, _ uint32) { f(tp, fp, r.pos, r.neg) })
	return nil
}

// AUROC is the area under the ROC curve, as sklearn.metrics.roc_auc_score.
func AUROC(scores []float32, labels []bool) (float64, error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, err
	}
	var area float64
	prevTP, prevFP := 0, 0
	r.sweep(labels, func(tp, fp int, _ uint32) {
		// Trapezoid between consecutive ROC points (counts, scaled at the end).
		area += float64(fp-prevFP) * float64(tp+prevTP) / 2
		prevTP, prevFP = tp, fp
	})
	return area / (float64(r.pos) * float64(r.neg)), nil
}

// AveragePrecision is sklearn.metrics.average_precision_score: the sum over
// distinct thresholds of the recall gained times the precision there.
func AveragePrecision(scores []float32, labels []bool) (float64, error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, err
	}
	var ap float64
	prevTP := 0
	r.sweep(labels, func(tp, fp int, _ uint32) {
		ap += float64(tp-prevTP) / float64(r.pos) * float64(tp) / float64(tp+fp)
		prevTP = tp
	})
	return ap, nil
}

// F1Max is the largest F1 score over all thresholds, as anomaly-detection
// papers report it, and the threshold that gives it (scores at or above it
// are called anomalous).
func F1Max(scores []float32, labels []bool) (f1 float64, threshold float32, err error) {
	r, err := rank(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	r.sweep(labels, func(tp, fp int, at uint32) {
		if tp == 0 {
			return
		}
		p := float64(tp) / float64(tp+fp)
		rc := float64(tp) / float64(r.pos)
		if v := 2 * p * rc / (p + rc); v > f1 {
			f1, threshold = v, scores[at]
		}
	})
	return f1, threshold, nil
}
