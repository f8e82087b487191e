package metrics

import (
	"math"
	"math/rand/v2"
	"path/filepath"
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
