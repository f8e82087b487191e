package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Regions labels the connected anomalous regions of a binary mask (h×w,
// row-major) with 8-connectivity, as MVTec AD's evaluation and anomalib
// do: 0 for normal pixels, 1..n for the regions. It returns n.
func Regions(mask []bool, w, h int) ([]int32, int) {
	lab := make([]int32, len(mask))
	n := int32(0)
	var stack []int
	for start, m := range mask {
		if !m || lab[start] != 0 {
			continue
		}
		n++
		lab[start] = n
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= w || ny >= h {
						continue
					}
					q := ny*w + nx
					if mask[q] && lab[q] == 0 {
						lab[q] = n
						stack = append(stack, q)
					}
				}
			}
		}
	}
	return lab, int(n)
}

// PROCurve is the per-region overlap against the false positive rate over
// every distinct threshold, from the highest score down.
type PROCurve struct {
	FPR, PRO []float64
	Regions  int
}

// PRO computes the per-region overlap curve of pixel scores against masks.
// The images are given as one score slice and one mask slice each, all
// w×h. At a threshold, PRO is the mean over every connected anomalous
// region (8-connectivity, per image) of the fraction of its pixels scored
// at or above the threshold, and FPR the fraction of normal pixels (of all
// images) scored at or above it.
func PRO(scores [][]float32, masks [][]bool, w, h int) (*PROCurve, error) {
	if len(scores) != len(masks) {
		return nil, fmt.Errorf("%d score maps but %d masks", len(scores), len(masks))
	}
	var all []float32
	var labels []bool
	for i := range scores {
		if len(scores[i]) != w*h || len(masks[i]) != w*h {
			return nil, fmt.Errorf("image %d: %d scores and %d mask pixels, want %d", i, len(scores[i]), len(masks[i]), w*h)
		}
		all, labels = append(all, scores[i]...), append(labels, masks[i]...)
	}
	if !slices.Contains(labels, true) {
		return nil, errNoRegion
	}
	r, err := Rank(all, labels)
	if err != nil {
		if errors.Is(err, ErrOneClass) {
			return nil, errNoNormal
		}
		return nil, err
	}
	c := &PROCurve{FPR: []float64{0}, PRO: []float64{0}}
	c.Regions, err = r.proSweep(masks, w, h, func(fpr, pro float64) bool {
		c.FPR, c.PRO = append(c.FPR, fpr), append(c.PRO, pro)
		return true
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

var (
	errNoRegion = errors.New("no anomalous region in the masks; PRO is undefined")
	errNoNormal = errors.New("no normal pixel in the masks; PRO is undefined")
)

// AUPRO is the area under the PRO curve of the ranked pixels against masks
// (see PRO) for FPR from 0 to limit, divided by limit, as PROCurve.AUPRO
// computes it; the ranked scores are the images' maps one after another,
// their labels the masks. It stops at the limit and keeps no curve, so it
// costs no memory per pixel beyond one region number.
func (r *Ranking) AUPRO(masks [][]bool, w, h int, limit float64) (float64, error) {
	a := auproSum{limit: limit}
	if _, err := r.proSweep(masks, w, h, a.add); err != nil {
		return 0, err
	}
	return a.area / limit, nil
}

// proSweep numbers the masks' regions and calls f with the FPR and PRO at
// each distinct threshold, from the highest score down, until f returns
// false. It returns the number of regions.
func (r *Ranking) proSweep(masks [][]bool, w, h int, f func(fpr, pro float64) bool) (int, error) {
	if len(masks)*w*h != len(r.order) {
		return 0, fmt.Errorf("%d masks of %d×%d pixels but %d ranked scores", len(masks), w, h, len(r.order))
	}
	// Every pixel's region, numbered across images (0: normal), and each
	// region's area.
	region := make([]int32, 0, len(r.order))
	area := []int{0}
	for i, m := range masks {
		if len(m) != w*h {
			return 0, fmt.Errorf("image %d: %d mask pixels, want %d", i, len(m), w*h)
		}
		lab, n := Regions(m, w, h)
		base := int32(len(area) - 1)
		if len(area)-1+n > math.MaxInt32 {
			return 0, errors.New("too many regions")
		}
		area = append(area, make([]int, n)...)
		for _, l := range lab {
			if l != 0 {
				l += base
				area[l]++
			}
			if (l != 0) != r.labels[len(region)] {
				return 0, fmt.Errorf("image %d: the ranked labels are not its mask", i)
			}
			region = append(region, l)
		}
	}
	regions := len(area) - 1
	if regions == 0 {
		return 0, errNoRegion
	}
	var pro float64
	start := 0
	for g := range r.keys {
		end := int(r.tp[g]) + int(r.fp[g])
		for _, i := range r.order[start:end] {
			if l := region[i]; l != 0 {
				pro += 1 / float64(area[l])
			}
		}
		if !f(float64(r.fp[g])/float64(r.neg), pro/float64(regions)) {
			break
		}
		start = end
	}
	return regions, nil
}

// auproSum integrates a PRO curve point by point from (0, 0) up to its
// FPR limit, the last segment interpolated linearly at the limit.
type auproSum struct {
	limit, area, x0, y0 float64
}

// add takes the curve's next point; false once the limit is passed.
func (a *auproSum) add(x1, y1 float64) bool {
	x0, y0 := a.x0, a.y0
	if x0 >= a.limit {
		return false
	}
	if x1 > a.limit {
		y1 = y0 + (y1-y0)*(a.limit-x0)/(x1-x0)
		x1 = a.limit
	}
	a.area += (x1 - x0) * (y0 + y1) / 2
	a.x0, a.y0 = x1, y1
	return true
}

// AUPRO is the area under the PRO curve for FPR from 0 to limit, divided
// by limit (so 1 is perfect), the curve interpolated linearly at the limit;
// anomalib's AUPRO with fpr_limit, MVTec AD's with integration_limit.
func (c *PROCurve) AUPRO(limit float64) float64 {
	a := auproSum{limit: limit, x0: c.FPR[0], y0: c.PRO[0]}
	for i := 1; i < len(c.FPR); i++ {
		if !a.add(c.FPR[i], c.PRO[i]) {
			break
		}
	}
	return a.area / limit
}
