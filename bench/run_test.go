package bench

import (
	"context"
	"testing"

	"madclip/dataset"
	"madclip/internal/reftest"
	"madclip/torch"
)

// A benchmark runs many trainings in one process: each must hand back
// everything it held (the feature cache of one ViT-L/14 run is over a GB),
// and every run gives one result with its settings.
func TestRunFreesEachRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four tiny models (-short)")
	}
	root := t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 2, Valid: 4, Test: 4, Size: 32, Datasets: []string{"Brain"}}); err != nil {
		t.Fatal(err)
	}
	tk := reftest.Tokenizer(t)
	c := Config{Data: root, Datasets: []string{"Brain"}, Shots: []int{1, 2}, Seeds: 2, Epochs: 1, Preset: "tiny",
		Size: 56, Work: t.TempDir(), Batch: 16, DrawShots: true, Version: "test"}
	var results []Result
	var leaked int64
	err := torch.Do(func() error {
		before := torch.LiveTensors()
		var err error
		results, err = Run(context.Background(), c, tk, func(string) {})
		leaked = torch.LiveTensors() - before
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if leaked != 0 {
		t.Errorf("%d tensors alive after the benchmark", leaked)
	}
	if len(results) != 4 {
		t.Fatalf("%d results, want 4 (2 shot counts × 2 seeds)", len(results))
	}
	for _, r := range results {
		if r.Dataset != "Brain" || r.Settings.Epochs != 1 || r.Settings.Preset != "tiny" || r.ImageAUROC < 0 || r.ImageAUROC > 1 || r.PixelAUROC == nil {
			t.Errorf("result %+v", r)
		}
		// Drawn shots are said to be drawn, and named.
		if si := r.ShotImages; !r.Settings.DrawShots || r.ShotsFile != "" || si == nil || len(si.Normal) != r.Shots || len(si.Abnormal) != r.Shots {
			t.Errorf("%d shots, seed %d: draw %v, file %q, images %+v", r.Shots, r.Seed, r.Settings.DrawShots, r.ShotsFile, si)
		}
	}
}
