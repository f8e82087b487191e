package metrics

import (
	"errors"
	"fmt"
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
	var weight []float64 // a pixel's share of the PRO (region pixels) or, negated, of the FPR
	regions := 0
	for i := range scores {
		if len(scores[i]) != w*h || len(masks[i]) != w*h {
			return nil, fmt.Errorf("image %d: %d scores and %d mask pixels, want %d", i, len(scores[i]), len(masks[i]), w*h)
		}
		lab, n := Regions(masks[i], w, h)
		area := make([]int, n+1)
		for _, l := range lab {
			area[l]++
		}
		for p, l := range lab {
			all = append(all, scores[i][p])
			if l == 0 {
				weight = append(weight, -1)
			} else {
				weight = append(weight, 1/float64(area[l]))
			}
		}
		regions += n
	}
	labels := make([]bool, len(all))
	negatives := 0
	for i, wt := range weight {
		labels[i] = wt > 0
		if wt < 0 {
			negatives++
		}
	}
	if regions == 0 {
		return nil, errors.New("no anomalous region in the masks; PRO is undefined")
	}
	if negatives == 0 {
		return nil, errors.New("no normal pixel in the masks; PRO is undefined")
	}
	r, err := rank(all, labels)
	if err != nil {
		return nil, err
	}
	c := &PROCurve{FPR: []float64{0}, PRO: []float64{0}, Regions: regions}
	var pro float64
	fp := 0
	for i := 0; i < len(r.order); {
		j := i
		for j < len(r.order) && r.keys[j] == r.keys[i] {
			if wt := weight[r.order[j]]; wt > 0 {
				pro += wt
			} else {
				fp++
			}
			j++
		}
		c.FPR = append(c.FPR, float64(fp)/float64(negatives))
		c.PRO = append(c.PRO, pro/float64(regions))
		i = j
	}
	return c, nil
}

// AUPRO is the area under the PRO curve for FPR from 0 to limit, divided
// by limit (so 1 is perfect), the curve interpolated linearly at the limit;
// anomalib's AUPRO with fpr_limit, MVTec AD's with integration_limit.
func (c *PROCurve) AUPRO(limit float64) float64 {
	var area float64
	for i := 1; i < len(c.FPR); i++ {
		x0, x1, y0, y1 := c.FPR[i-1], c.FPR[i], c.PRO[i-1], c.PRO[i]
		if x0 >= limit {
			break
		}
		if x1 > limit {
			y1 = y0 + (y1-y0)*(limit-x0)/(x1-x0)
			x1 = limit
		}
		area += (x1 - x0) * (y0 + y1) / 2
	}
	return area / limit
}
