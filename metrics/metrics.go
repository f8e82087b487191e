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
	"slices"
)

// ErrOneClass is returned when the labels hold only one class.
var ErrOneClass = errors.New("only one class present; the metric is undefined")

// Ranking is a set of scores sorted by descending score, with their labels
// and class counts: the one sort that every threshold-free metric of the
// same scores can share (AUROC, AP, the ROC and precision-recall curves,
// PRO), which matters for the tens of millions of pixels of a test split.
// Per distinct score it holds the true and false positives at and above
// it, so that a metric is one pass over those counts. It holds the labels
// it was given (not a copy: they must not change) but not the scores.
type Ranking struct {
	order []uint32 // indices by descending score
	// Per distinct score, from the highest down: its key and the true and
	// false positives at or above it (their sum ends its run in order).
	keys     []uint32
	tp, fp   []uint32
	labels   []bool
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

// keyScore is the float32 of a sortable key (zero for negative zero).
func keyScore(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

// Rank validates the input (equal lengths, no NaN, both classes) and sorts
// it by descending score with an LSD radix sort (four 8-bit passes) that
// carries the labels along: linear time, no comparisons, stable among
// equal scores, and no random reads of the labels afterwards.
func Rank(scores []float32, labels []bool) (*Ranking, error) {
	if len(scores) != len(labels) {
		return nil, fmt.Errorf("%d scores but %d labels", len(scores), len(labels))
	}
	if len(scores) == 0 {
		return nil, errors.New("no scores")
	}
	if len(scores) > math.MaxUint32 {
		return nil, errors.New("too many scores (at most 2^32)")
	}
	r := &Ranking{labels: labels}
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
	lab := slices.Clone(labels)
	tmpK, tmpI, tmpL := make([]uint32, n), make([]uint32, n), make([]bool, n)
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
			tmpK[count[d]], tmpI[count[d]], tmpL[count[d]] = k, idx[i], lab[i]
			count[d]++
		}
		keys, tmpK = tmpK, keys
		idx, tmpI = tmpI, idx
		lab, tmpL = tmpL, lab
	}
	r.order = idx
	distinct := 0
	for i, k := range keys {
		if i+1 == n || keys[i+1] != k {
			distinct++
		}
	}
	r.keys, r.tp, r.fp = make([]uint32, 0, distinct), make([]uint32, 0, distinct), make([]uint32, 0, distinct)
	var tp, fp uint32
	for i, k := range keys {
		if lab[i] {
			tp++
		} else {
			fp++
		}
		if i+1 == n || keys[i+1] != k { // the last of its score
			r.keys, r.tp, r.fp = append(r.keys, k), append(r.tp, tp), append(r.fp, fp)
		}
	}
	return r, nil
}

// Positives is the number of scores labelled true.
func (r *Ranking) Positives() int { return r.pos }

// Negatives is the number of scores labelled false.
func (r *Ranking) Negatives() int { return r.neg }

// Distinct is the number of distinct scores: the points of the ROC and
// precision-recall curves besides their start.
func (r *Ranking) Distinct() int { return len(r.keys) }

// sweep calls f once per distinct score, from the highest down, with the
// true and false positives at and above it.
func (r *Ranking) sweep(f func(tp, fp int, score float32)) {
	for g, k := range r.keys {
		f(int(r.tp[g]), int(r.fp[g]), keyScore(^k))
	}
}

// Sweep calls f once per distinct score, from the highest down, with the
// true and false positives at or above it and the class totals: the points
// of the ROC and precision-recall curves.
func (r *Ranking) Sweep(f func(tp, fp, pos, neg int)) {
	for g := range r.keys {
		f(int(r.tp[g]), int(r.fp[g]), r.pos, r.neg)
	}
}

// Sweep ranks scores and sweeps them (see Ranking.Sweep). It fails as
// AUROC does (one class, NaN scores), without calling f.
func Sweep(scores []float32, labels []bool, f func(tp, fp, pos, neg int)) error {
	r, err := Rank(scores, labels)
	if err != nil {
		return err
	}
	r.Sweep(f)
	return nil
}

// AUROC is the area under the ROC curve, as sklearn.metrics.roc_auc_score.
func (r *Ranking) AUROC() float64 {
	var area float64
	prevTP, prevFP := 0, 0
	r.sweep(func(tp, fp int, _ float32) {
		// Trapezoid between consecutive ROC points (counts, scaled at the end).
		area += float64(fp-prevFP) * float64(tp+prevTP) / 2
		prevTP, prevFP = tp, fp
	})
	return area / (float64(r.pos) * float64(r.neg))
}

// AUROC ranks scores and returns Ranking.AUROC.
func AUROC(scores []float32, labels []bool) (float64, error) {
	r, err := Rank(scores, labels)
	if err != nil {
		return 0, err
	}
	return r.AUROC(), nil
}

// AveragePrecision is sklearn.metrics.average_precision_score: the sum over
// distinct thresholds of the recall gained times the precision there.
func (r *Ranking) AveragePrecision() float64 {
	var ap float64
	prevTP := 0
	r.sweep(func(tp, fp int, _ float32) {
		ap += float64(tp-prevTP) / float64(r.pos) * float64(tp) / float64(tp+fp)
		prevTP = tp
	})
	return ap
}

// AveragePrecision ranks scores and returns Ranking.AveragePrecision.
func AveragePrecision(scores []float32, labels []bool) (float64, error) {
	r, err := Rank(scores, labels)
	if err != nil {
		return 0, err
	}
	return r.AveragePrecision(), nil
}

// F1Max is the largest F1 score over all thresholds, as anomaly-detection
// papers report it, and the threshold that gives it (scores at or above it
// are called anomalous).
func F1Max(scores []float32, labels []bool) (f1 float64, threshold float32, err error) {
	r, err := Rank(scores, labels)
	if err != nil {
		return 0, 0, err
	}
	r.sweep(func(tp, fp int, score float32) {
		if tp == 0 {
			return
		}
		p := float64(tp) / float64(tp+fp)
		rc := float64(tp) / float64(r.pos)
		if v := 2 * p * rc / (p + rc); v > f1 {
			f1, threshold = v, score
		}
	})
	return f1, threshold, nil
}
