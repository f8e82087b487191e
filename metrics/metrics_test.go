package metrics

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"madclip/internal/reftest"
)

type testCase struct {
	Scores []float32 `json:"scores"`
	Labels []bool    `json:"labels"`
}

func randomCase(r *rand.Rand, n int, levels int) testCase {
	c := testCase{Scores: make([]float32, n), Labels: make([]bool, n)}
	for i := range c.Scores {
		c.Labels[i] = r.Float64() < 0.3
		v := r.NormFloat64()
		if c.Labels[i] {
			v += 0.8
		}
		if levels > 0 { // quantise: many ties
			v = math.Round(v*float64(levels)) / float64(levels)
		}
		c.Scores[i] = float32(v)
	}
	return c
}

// Against scikit-learn on random data, with and without many ties, with
// negative scores and zeros of both signs.
func TestAgainstSklearn(t *testing.T) {
	py := reftest.Python(t, "sklearn", "numpy")
	r := rand.New(rand.NewPCG(1, 2))
	cases := []testCase{
		randomCase(r, 1000, 0), randomCase(r, 1000, 2), randomCase(r, 5000, 10), randomCase(r, 50, 1),
		{Scores: []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1, 0.5}, Labels: []bool{true, false, true, false, false, true}},
		{Scores: []float32{3, 3, 3, 3}, Labels: []bool{true, false, false, true}},
	}
	var want []struct {
		Auroc, Ap, F1, Youden float64
		Confusion             [4]int
	}
	reftest.RunJSON(t, py, filepath.Join("testdata", "reference_metrics.py"), cases, &want)
	for i, c := range cases {
		auc, err := AUROC(c.Scores, c.Labels)
		if err != nil || math.Abs(auc-want[i].Auroc) > 1e-12 {
			t.Errorf("case %d: AUROC %v (%v), sklearn %v", i, auc, err, want[i].Auroc)
		}
		ap, _ := AveragePrecision(c.Scores, c.Labels)
		if math.Abs(ap-want[i].Ap) > 1e-12 {
			t.Errorf("case %d: AP %v, sklearn %v", i, ap, want[i].Ap)
		}
		f1, th, _ := F1Max(c.Scores, c.Labels)
		if math.Abs(f1-want[i].F1) > 1e-9 {
			t.Errorf("case %d: F1-max %v, sklearn %v", i, f1, want[i].F1)
		}
		// The threshold gives the F1 it claims.
		var tp, fp, fn float64
		for j, s := range c.Scores {
			switch {
			case s >= th && c.Labels[j]:
				tp++
			case s >= th:
				fp++
			case c.Labels[j]:
				fn++
			}
		}
		if got := 2 * tp / (2*tp + fp + fn); math.Abs(got-f1) > 1e-9 {
			t.Errorf("case %d: threshold %v gives F1 %v, not %v", i, th, got, f1)
		}
		j, jth, _ := YoudenMidpoint(c.Scores, c.Labels)
		if math.Abs(j-want[i].Youden) > 1e-12 {
			t.Errorf("case %d: Youden's J %v, sklearn %v", i, j, want[i].Youden)
		}
		if cj, _ := At(c.Scores, c.Labels, float64(jth)); math.Abs(cj.Sensitivity()+cj.Specificity()-1-j) > 1e-12 {
			t.Errorf("case %d: the Youden threshold %v gives J %v, not %v", i, jth, cj.Sensitivity()+cj.Specificity()-1, j)
		}
		cm, _ := At(c.Scores, c.Labels, float64(float32(0.3)))
		if got := [4]int{cm.TP, cm.FP, cm.TN, cm.FN}; got != want[i].Confusion {
			t.Errorf("case %d: confusion at 0.3 %v, sklearn %v", i, got, want[i].Confusion)
		}
	}
}

func TestHandChecked(t *testing.T) {
	// Perfect, inverted and uninformative rankings.
	for _, c := range []struct {
		s    []float32
		l    []bool
		want float64
	}{
		{[]float32{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{[]float32{0.1, 0.2, 0.8, 0.9}, []bool{true, true, false, false}, 0},
		{[]float32{0.5, 0.5, 0.5, 0.5}, []bool{true, false, true, false}, 0.5},
		{[]float32{1, 2, 3}, []bool{false, true, false}, 0.5},
	} {
		if got, err := AUROC(c.s, c.l); err != nil || got != c.want {
			t.Errorf("AUROC(%v, %v) = %v, %v; want %v", c.s, c.l, got, err, c.want)
		}
	}
}

func TestDegenerate(t *testing.T) {
	if _, err := AUROC([]float32{1, 2}, []bool{true, true}); err != ErrOneClass {
		t.Errorf("one class: %v", err)
	}
	if _, err := AUROC(nil, nil); err == nil {
		t.Error("empty input accepted")
	}
	if _, err := AUROC([]float32{1, float32(math.NaN())}, []bool{true, false}); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := AveragePrecision([]float32{1}, []bool{true, false}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, _, err := F1Max([]float32{1, 2}, []bool{false, false}); err != ErrOneClass {
		t.Errorf("F1 of one class: %v", err)
	}
	// Infinities are ordinary extreme scores.
	if got, err := AUROC([]float32{float32(math.Inf(-1)), float32(math.Inf(1))}, []bool{false, true}); err != nil || got != 1 {
		t.Errorf("infinite scores: %v %v", got, err)
	}
}

// 10^7 values (a pixel-level evaluation's size), checked against the
// rank-sum formula computed independently.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("10^7 values")
	}
	r := rand.New(rand.NewPCG(3, 4))
	c := randomCase(r, 10_000_000, 100)
	start := time.Now()
	auc, err := AUROC(c.Scores, c.Labels)
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Independent check: Mann-Whitney U with midranks through a histogram
	// of the quantised scores.
	counts := map[float32][2]float64{}
	for i, s := range c.Scores {
		v := counts[s]
		if c.Labels[i] {
			v[1]++
		} else {
			v[0]++
		}
		counts[s] = v
	}
	keys := make([]float32, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sortFloat32s(keys)
	var below, u, pos, neg float64
	for _, k := range keys {
		v := counts[k]
		u += v[1] * (below + v[0]/2)
		below += v[0]
		pos += v[1]
		neg += v[0]
	}
	if want := u / (pos * neg); math.Abs(auc-want) > 1e-9 {
		t.Errorf("AUROC %v, rank-sum %v", auc, want)
	}
	t.Logf("AUROC of 10^7 values in %v", el)
}

func sortFloat32s(a []float32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func BenchmarkAUROC60M(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	c := randomCase(r, 60_000_000, 0)
	b.ResetTimer()
	for range b.N {
		if _, err := AUROC(c.Scores, c.Labels); err != nil {
			b.Fatal(err)
		}
	}
}

// The calibration thresholds: the best F1 (as F1Max) and J (by brute force),
// reached at a threshold strictly inside the gap below the best cut's
// lowest positive score, checked by brute force over every cut.
func TestMidpointThresholds(t *testing.T) {
	// Perfectly separated: the gap is (0.4, 0.8), its midpoint 0.6.
	scores := []float32{0.1, 0.4, 0.8, 0.9}
	labels := []bool{false, false, true, true}
	for name, f := range map[string]func([]float32, []bool) (float64, float32, error){"F1": F1MaxMidpoint, "Youden": YoudenMidpoint} {
		v, th, err := f(scores, labels)
		if err != nil || v != 1 || math.Abs(float64(th)-0.6) > 1e-7 {
			t.Errorf("%s: %v at %v (%v), want 1 at 0.6", name, v, th, err)
		}
	}
	// Every score called positive: no lower end, the lowest score itself.
	if f1, th, _ := F1MaxMidpoint([]float32{0.5, 0.7, 0.9}, []bool{true, false, true}); th != 0.5 || math.Abs(f1-0.8) > 1e-12 {
		t.Errorf("all positive: F1 %v at %v", f1, th)
	}
	// Adjacent float32 values: nothing between them, the upper one.
	hi := float32(1)
	lo := math.Nextafter32(hi, 0)
	if _, th, _ := YoudenMidpoint([]float32{lo, hi}, []bool{false, true}); th != hi {
		t.Errorf("adjacent floats: %v", th)
	}
	// Infinite scores on both sides of the gap.
	inf := float32(math.Inf(1))
	if _, th, _ := YoudenMidpoint([]float32{-inf, inf}, []bool{false, true}); th != inf {
		t.Errorf("infinite gap: %v", th)
	}
	if _, _, err := F1MaxMidpoint([]float32{1, 2}, []bool{true, true}); err != ErrOneClass {
		t.Errorf("one class: %v", err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i, c := range []testCase{randomCase(r, 200, 0), randomCase(r, 500, 3), randomCase(r, 40, 0), randomCase(r, 1000, 20)} {
		f1, _, _ := F1Max(c.Scores, c.Labels)
		j := math.Inf(-1) // by brute force over every cut
		for _, s := range c.Scores {
			cf, _ := At(c.Scores, c.Labels, float64(s))
			j = math.Max(j, cf.Sensitivity()+cf.Specificity()-1)
		}
		for name, want := range map[string]float64{"F1": f1, "Youden": j} {
			got, th := 0.0, float32(0)
			if name == "F1" {
				got, th, _ = F1MaxMidpoint(c.Scores, c.Labels)
			} else {
				got, th, _ = YoudenMidpoint(c.Scores, c.Labels)
			}
			cf, _ := At(c.Scores, c.Labels, float64(th))
			at := cf.F1()
			if name == "Youden" {
				at = cf.Sensitivity() + cf.Specificity() - 1
			}
			if math.Abs(got-want) > 1e-12 || math.Abs(at-want) > 1e-12 {
				t.Errorf("case %d %s: %v, at its threshold %v, want %v", i, name, got, at, want)
			}
			// Strictly inside a gap: no score equals it unless it is the
			// lowest score, and it lies halfway between its neighbours.
			below, above := float32(math.Inf(-1)), float32(math.Inf(1))
			for _, s := range c.Scores {
				if s < th && s > below {
					below = s
				}
				if s >= th && s < above {
					above = s
				}
			}
			if !math.IsInf(float64(below), -1) && math.Abs(float64(th)-(float64(below)+float64(above))/2) > 1e-6 {
				t.Errorf("case %d %s: threshold %v not halfway between %v and %v", i, name, th, below, above)
			}
		}
	}
}

// Equal J at two cuts is a tie, won by the first (higher) cut: both cuts
// below give exactly 3/10, though as floats 1/2 − 2/10 and 2/2 − 7/10
// differ in the last bit.
func TestYoudenExactTies(t *testing.T) {
	var scores []float32
	var labels []bool
	add := func(s float32, pos, neg int) {
		for range pos {
			scores, labels = append(scores, s), append(labels, true)
		}
		for range neg {
			scores, labels = append(scores, s), append(labels, false)
		}
	}
	add(0.9, 1, 2)
	add(0.5, 1, 5)
	add(0.1, 0, 3)
	j, th, err := YoudenMidpoint(scores, labels)
	if err != nil || math.Abs(float64(th)-0.7) > 1e-7 || math.Abs(j-0.3) > 1e-15 {
		t.Errorf("YoudenMidpoint: J %v at %v (%v), want 0.3 at 0.7", j, th, err)
	}
}

// A threshold prints with 4 to 6 decimals, never as the round number it is
// a hair above.
func TestFormatThreshold(t *testing.T) {
	for th, want := range map[float64]string{0.5281: "0.5281", 0.5000289678573608: "0.500029", 0.5: "0.5000", 0.12345: "0.12345", 1: "1.0000", 0.60000004: "0.6000", 3.2e-7: "3.2e-07", 0.0001: "0.0001", 0: "0.0000", 0.00009999: "9.999e-05"} {
		if got := FormatThreshold(th); got != want {
			t.Errorf("%v: %q, want %q", th, got, want)
		}
	}
}
