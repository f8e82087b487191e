package bench

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	px := func(v float64) *float64 { return &v }
	results := []Result{
		{Dataset: "Chest", Shots: 16, Seed: 1, ImageAUROC: 0.80},
		{Dataset: "Brain", Shots: 16, Seed: 1, ImageAUROC: 0.90, PixelAUROC: px(0.95)},
		{Dataset: "Brain", Shots: 16, Seed: 2, ImageAUROC: 0.94, PixelAUROC: px(0.97)},
		{Dataset: "Brain", Shots: 2, Seed: 1, ImageAUROC: 0.70, PixelAUROC: px(0.90)},
		{Dataset: "Chest", TrainedOn: "Brain", Shots: 16, Seed: 1, ImageAUROC: 0.6},
		{Dataset: "NIHChest", TrainedOn: "Chest", Shots: 16, Seed: 1, ImageAUROC: 0.61},
	}
	got := Table(results)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if lines[0] != "| shots | Brain AC | Brain AS | Chest AC | Brain→Chest AC | Chest→NIHChest AC |" {
		t.Errorf("header %q", lines[0])
	}
	// Rows sorted by shots. One seed: the mean alone, no "± 0.00"; the
	// paper's 2-shot numbers (Table 2) beside ours.
	if !strings.HasPrefix(lines[2], "| 2 | 70.00 (paper 93.93) | 90.00 (paper 97.92) | — |") {
		t.Errorf("2-shot row %q", lines[2])
	}
	// 16-shot Brain: mean 92 ± 2.83 with the paper's 95.90 (Table 1).
	if !strings.Contains(lines[3], "92.00 ± 2.83 (paper 95.90)") || !strings.Contains(lines[3], "96.00 ± 1.41 (paper 97.97)") {
		t.Errorf("16-shot row %q", lines[3])
	}
	// A cross pair the paper has (Table 3) carries its number; one it has
	// not carries none.
	if !strings.HasSuffix(lines[3], "| 60.00 | 61.00 (paper 62.44) |") {
		t.Errorf("cross-dataset cells: %q", lines[3])
	}
	if strings.Contains(got, "± 0.00") {
		t.Error("a single seed shows a spread")
	}
}

func TestPaperNumbers(t *testing.T) {
	for _, c := range []struct {
		dataset string
		k       int
		kind    string
		want    float64
		ok      bool
	}{
		{"Brain", 16, "AC", 95.90, true},
		{"Liver", 16, "AS", 99.74, true},
		{"Retina_OCT2017", 8, "AC", 99.14, true},
		{"Brain", 2, "AS", 97.92, true},
		{"Chest", 4, "AS", 0, false},
		{"Brain", 3, "AC", 0, false},
		{"Knee", 16, "AC", 0, false},
	} {
		got, ok := PaperAUC(c.dataset, c.k, c.kind)
		if ok != c.ok || got != c.want {
			t.Errorf("%s %d-shot %s: %v %v, want %v %v", c.dataset, c.k, c.kind, got, ok, c.want, c.ok)
		}
	}
	if v, ok := PaperCrossAUC("Retina_RESC", "OCTDL"); !ok || v != 88.09 {
		t.Errorf("RESC → OCTDL: %v %v", v, ok)
	}
	if _, ok := PaperCrossAUC("Brain", "Chest"); ok {
		t.Error("a pair the paper lacks")
	}
	if got := strings.Join(CrossTargets(), " "); got != "Chest:NIHChest Chest:CheXpert Brain:ADNI Retina_OCT2017:OCTDL Retina_RESC:OCTDL" {
		t.Errorf("cross targets %q", got)
	}
}
