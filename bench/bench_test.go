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
	}
	got := Table(results)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if lines[0] != "| shots | Brain AC | Brain AS | Chest AC | Brain→Chest AC |" {
		t.Errorf("header %q", lines[0])
	}
	// Rows sorted by shots; 16-shot Brain: mean 92 ± 2.83 with the paper's 95.90.
	if !strings.HasPrefix(lines[2], "| 2 | 70.00 ± 0.00 | 90.00 ± 0.00 | — |") {
		t.Errorf("2-shot row %q", lines[2])
	}
	if !strings.Contains(lines[3], "92.00 ± 2.83 (paper 95.90)") || !strings.Contains(lines[3], "96.00 ± 1.41 (paper 97.97)") {
		t.Errorf("16-shot row %q", lines[3])
	}
	if !strings.HasSuffix(lines[3], "| 60.00 ± 0.00 |") {
		t.Errorf("cross-dataset cell carries a same-dataset paper number: %q", lines[3])
	}
}
