package metrics

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/internal/reftest"
)

type proCase struct {
	W      int         `json:"w"`
	H      int         `json:"h"`
	Scores [][]float32 `json:"scores"`
	Masks  [][]bool    `json:"masks"`
	Limit  float64     `json:"limit"`
}

// blobs draws a few random rectangles and diagonal chains (8-connected
// only through corners) into a w×h mask, and scores that rise inside them
// with noise and ties.
func blobs(r *rand.Rand, w, h int) ([]float32, []bool) {
	m := make([]bool, w*h)
	for range r.IntN(4) {
		x0, y0 := r.IntN(w), r.IntN(h)
		for y := y0; y < min(h, y0+1+r.IntN(5)); y++ {
			for x := x0; x < min(w, x0+1+r.IntN(5)); x++ {
				m[y*w+x] = true
			}
		}
	}
	if r.IntN(2) == 0 { // a diagonal: one region with 8-connectivity, several with 4
		x, y := r.IntN(w/2), r.IntN(h/2)
		for k := 0; k < 5 && x+k < w && y+k < h; k++ {
			m[(y+k)*w+x+k] = true
		}
	}
	s := make([]float32, w*h)
	for i := range s {
		v := r.Float64() * 0.7
		if m[i] {
			v += 0.4 * r.Float64()
		}
		s[i] = float32(math.Round(v*50) / 50) // ties
	}
	return s, m
}

// TestPROAgainstScipy compares the PRO curve's AUPRO with an independent
// computation from the definition (scipy.ndimage.label, a threshold loop).
func TestPROAgainstScipy(t *testing.T) {
	py := reftest.Python(t, "scipy", "numpy")
	r := rand.New(rand.NewPCG(5, 6))
	var cases []proCase
	for _, limit := range []float64{0.3, 0.3, 0.05, 1} {
		c := proCase{W: 17, H: 13, Limit: limit}
		for range 3 {
			s, m := blobs(r, c.W, c.H)
			c.Scores, c.Masks = append(c.Scores, s), append(c.Masks, m)
		}
		c.Masks[0][0] = true // at least one region
		cases = append(cases, c)
	}
	var want []struct {
		Aupro   float64
		Regions int
	}
	reftest.RunJSON(t, py, filepath.Join("testdata", "reference_pro.py"), cases, &want)
	for i, c := range cases {
		curve, err := PRO(c.Scores, c.Masks, c.W, c.H)
		if err != nil {
			t.Fatal(err)
		}
		if curve.Regions != want[i].Regions {
			t.Errorf("case %d: %d regions, scipy %d", i, curve.Regions, want[i].Regions)
		}
		if got := curve.AUPRO(c.Limit); math.Abs(got-want[i].Aupro) > 1e-9 {
			t.Errorf("case %d: AUPRO(%v) %v, reference %v", i, c.Limit, got, want[i].Aupro)
		}
		r, err := Rank(slices.Concat(c.Scores...), slices.Concat(c.Masks...))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.AUPRO(c.Masks, c.W, c.H, c.Limit); err != nil || math.Abs(got-want[i].Aupro) > 1e-9 {
			t.Errorf("case %d: ranked AUPRO(%v) %v (%v), reference %v", i, c.Limit, got, err, want[i].Aupro)
		}
	}
}

// TestRankingShared: the metrics of one shared ranking are exactly those
// computed each from the scores, AUPRO on the fly exactly the curve's, and
// a ranking that is not of the masks given is refused.
func TestRankingShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const w, h = 23, 19
	var maps [][]float32
	var masks [][]bool
	for range 6 {
		s, m := blobs(rng, w, h)
		maps, masks = append(maps, s), append(masks, m)
	}
	masks[2][5] = true
	all, labels := slices.Concat(maps...), slices.Concat(masks...)
	r, err := Rank(all, labels)
	if err != nil {
		t.Fatal(err)
	}
	auc, _ := AUROC(all, labels)
	ap, _ := AveragePrecision(all, labels)
	if r.AUROC() != auc || r.AveragePrecision() != ap {
		t.Errorf("shared AUROC %v AP %v, alone %v %v", r.AUROC(), r.AveragePrecision(), auc, ap)
	}
	distinct := map[float32]bool{}
	for _, v := range all {
		distinct[v] = true
	}
	if r.Distinct() != len(distinct) || r.Positives()+r.Negatives() != len(all) {
		t.Errorf("%d distinct scores, want %d; %d+%d of %d", r.Distinct(), len(distinct), r.Positives(), r.Negatives(), len(all))
	}
	curve, err := PRO(maps, masks, w, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []float64{0.01, 0.05, 0.3, 1} {
		got, err := r.AUPRO(masks, w, h, limit)
		if err != nil || got != curve.AUPRO(limit) {
			t.Errorf("AUPRO(%v) on the fly %v (%v), from the curve %v", limit, got, err, curve.AUPRO(limit))
		}
	}
	other := slices.Clone(masks)
	other[1] = make([]bool, w*h)
	if _, err := r.AUPRO(other, w, h, 0.3); err == nil {
		t.Error("a ranking of other masks accepted")
	}
	if _, err := r.AUPRO(masks[:5], w, h, 0.3); err == nil {
		t.Error("too few masks accepted")
	}
	full := []bool{true, true, true, true}
	if _, err := PRO([][]float32{{1, 2, 3, 4}}, [][]bool{full}, 2, 2); err == nil || !strings.Contains(err.Error(), "no normal pixel") {
		t.Errorf("all-anomalous masks: %v", err)
	}
}

// TestPROHandChecked: a perfect map gives AUPRO 1, an inverted one 0; a
// region is counted once whatever its size; a diagonal is one region.
func TestPROHandChecked(t *testing.T) {
	m := []bool{
		true, false, false, false,
		false, true, false, false,
		false, false, false, true,
		false, false, false, true,
	}
	lab, n := Regions(m, 4, 4)
	if n != 2 || lab[0] != lab[5] || lab[11] != lab[15] || lab[0] == lab[11] {
		t.Errorf("regions %v (%d)", lab, n)
	}
	perfect := make([]float32, 16)
	inverted := make([]float32, 16)
	for i, v := range m {
		if v {
			perfect[i], inverted[i] = 1, 0
		} else {
			perfect[i], inverted[i] = 0, 1
		}
	}
	c, _ := PRO([][]float32{perfect}, [][]bool{m}, 4, 4)
	if a := c.AUPRO(0.3); math.Abs(a-1) > 1e-12 {
		t.Errorf("perfect AUPRO %v", a)
	}
	c, _ = PRO([][]float32{inverted}, [][]bool{m}, 4, 4)
	if a := c.AUPRO(0.3); a != 0 {
		t.Errorf("inverted AUPRO %v", a)
	}
	// Half of the small region found at a threshold where no normal pixel
	// fires: PRO = (1/2 + 0)/2 there.
	s := make([]float32, 16)
	s[0] = 1
	c, _ = PRO([][]float32{s}, [][]bool{m}, 4, 4)
	if c.FPR[1] != 0 || math.Abs(c.PRO[1]-0.25) > 1e-12 {
		t.Errorf("first point (%v, %v), want (0, 0.25)", c.FPR[1], c.PRO[1])
	}
	if _, err := PRO([][]float32{s}, [][]bool{make([]bool, 16)}, 4, 4); err == nil {
		t.Error("masks without regions accepted")
	}
}
