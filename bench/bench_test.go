package bench

import (
	"strings"
	"testing"

	"madclip/checkpoint"
	"madclip/infer"
	"madclip/internal/jsonpath"
	"madclip/model"
)

func TestTable(t *testing.T) {
	px := func(v float64) *float64 { return &v }
	results := []Result{
		{Dataset: "Chest", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.80}},
		{Dataset: "Brain", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.90, PixelAUROC: px(0.95)}},
		{Dataset: "Brain", Shots: 16, Seed: 2, Metrics: infer.Metrics{ImageAUROC: 0.94, PixelAUROC: px(0.97)}},
		{Dataset: "Brain", Shots: 2, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.70, PixelAUROC: px(0.90)}},
		{Dataset: "Chest", TrainedOn: "Brain", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.6}},
		{Dataset: "NIHChest", TrainedOn: "Chest", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.61}},
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
	// Under the table: which epoch is scored, beside the paper's choice.
	if !strings.Contains(got, "\nScored: each run's last epoch; the paper's numbers are each run's best epoch on the test split itself") {
		t.Errorf("no epochs note for last-epoch runs:\n%s", got)
	}
	for i := range results {
		results[i].Settings.SelectOnValid = true
	}
	if got := Table(results); !strings.Contains(got, "\nScored: each run's best epoch on its held-out valid images (image + pixel AUROC with masks") {
		t.Errorf("no epochs note for selected runs:\n%s", got)
	}
	// A table without the paper's numbers does not speak of them.
	if got := Table([]Result{{Dataset: "Knee", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.8}}}); !strings.Contains(got, "\nScored: each run's last epoch.\n") {
		t.Errorf("epochs note without the paper's numbers:\n%s", got)
	}
	results[0].Settings.SelectOnValid = false
	if got := Table(results); !strings.Contains(got, "\nScored: the last epoch, or the best on held-out valid images where a run selected one;") {
		t.Errorf("no epochs note for mixed runs:\n%s", got)
	}
}

// A run that is not the paper's (fewer epochs, smaller images, a preset,
// drawn shots) says so under the table; one that is says nothing.
func TestSettingsNote(t *testing.T) {
	paper := Settings{Epochs: 60, Batch: 16, ImageSize: 240, Architecture: "ViT-L/14-336", Layers: []int{6, 12, 18, 24}}
	list := "fewshot/Brain/16/seed1.txt"
	results := []Result{
		{Dataset: "Brain", Shots: 16, Seed: 1, ShotsFile: jsonpath.Path(list), Metrics: infer.Metrics{ImageAUROC: 0.9}, Settings: paper},
		{Dataset: "Knee", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.9}, Settings: paper}, // no list exists: not "drawn"
		{Dataset: "Chest", TrainedOn: "Brain", Shots: 16, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.6}, Settings: paper},
	}
	if got := Table(results); strings.Contains(got, "Not the paper's") {
		t.Errorf("the paper's settings noted:\n%s", got)
	}
	quick := Settings{Epochs: 1, Batch: 16, ImageSize: 56, Preset: "tiny"}
	results = append(results,
		Result{Dataset: "Brain", Shots: 2, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.7}, Settings: quick},
		Result{Dataset: "Brain", Shots: 4, Seed: 1, Metrics: infer.Metrics{ImageAUROC: 0.7}, Settings: Settings{Epochs: 2, Batch: 8, ImageSize: 56, Preset: "tiny"}})
	lines := strings.Split(strings.TrimSpace(Table(results)), "\n")
	want := "Not the paper's settings: 1 epoch (paper 60), 2 epochs (paper 60), batch 8 (paper 16), 56-px images (paper 240), " +
		"the tiny preset with random weights (paper: CLIP ViT-L/14), drawn shots (paper: the authors' fixed lists); the paper's numbers are for orientation only."
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("note %q,\nwant %q", last, want)
	}
	// Real weights of another CLIP, or other tapped layers, are named too.
	other := paper
	other.Architecture, other.Layers = "ViT-B/16", []int{3, 6, 9, 12}
	own := paper
	own.Layers = []int{8, 16, 24}
	lines = strings.Split(strings.TrimSpace(Table([]Result{
		{Dataset: "Brain", Shots: 16, Seed: 1, ShotsFile: jsonpath.Path(list), Metrics: infer.Metrics{ImageAUROC: 0.9}, Settings: other},
		{Dataset: "Brain", Shots: 16, Seed: 2, ShotsFile: jsonpath.Path(list), Metrics: infer.Metrics{ImageAUROC: 0.9}, Settings: own},
	})), "\n")
	want = "Not the paper's settings: CLIP ViT-B/16 (paper: ViT-L/14-336), tapped layers 3, 6, 9, 12 (paper 6, 12, 18, 24), " +
		"tapped layers 8, 16, 24 (paper 6, 12, 18, 24); the paper's numbers are for orientation only."
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("note %q,\nwant %q", last, want)
	}
	if shots(1) != "1 shot" || shots(16) != "16 shots" {
		t.Errorf("shots(1) %q, shots(16) %q", shots(1), shots(16))
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

// The table's note names a model's departures from the paper's and its
// ablations.
func TestModelDepartures(t *testing.T) {
	p := infer.Provenance{Model: model.Options{SharedAdapters: true, QuickGELU: true}, Training: &checkpoint.Training{SoftmaxLoss: true}}
	got := strings.Join(modelDepartures(p), ", ")
	if want := "QuickGELU (paper: exact GELU), ablation: shared adapters, ablation: softmax loss"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if d := modelDepartures(infer.Provenance{}); len(d) != 0 {
		t.Errorf("the paper's model: %q", d)
	}
}
