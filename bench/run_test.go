package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// A split a run would read that is not there stops the bench before any
// training, naming it.
func TestRunChecksSplitsFirst(t *testing.T) {
	root := t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 2, Valid: 4, Test: 4, Size: 32, Datasets: []string{"Brain", "Chest"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dataset.Dir(root, "Chest"), "test")); err != nil {
		t.Fatal(err)
	}
	c := Config{Data: root, Datasets: []string{"Brain", "Chest"}, Shots: []int{1}, Seeds: 1, Epochs: 1, Preset: "tiny",
		Size: 56, Work: t.TempDir(), Batch: 16, DrawShots: true, Version: "test"}
	var notes []string
	err := torch.Do(func() error {
		_, err := Run(context.Background(), c, reftest.Tokenizer(t), func(s string) { notes = append(notes, s) })
		return err
	})
	if err == nil || !strings.Contains(err.Error(), filepath.Join("Chest_AD", "test")) {
		t.Errorf("bench with Chest's test split missing: %v", err)
	}
	for _, n := range notes {
		if strings.Contains(n, "training") {
			t.Errorf("trained before finding the split missing: %q", n)
		}
	}
}

// A run's warnings reach the bench once per dataset, under the first
// run's label.
func TestRunWarnings(t *testing.T) {
	var got []string
	seen := map[string]bool{}
	for seed := range 2 {
		r := &runWarnings{dataset: "Brain", run: fmt.Sprintf("Brain, 2 shots, seed %d", seed+1), warn: func(s string) { got = append(got, s) }, seen: seen}
		r.Stage("reading the few shots")
		r.Warn("1 of the 2 abnormal shots have a mask that marks nothing")
	}
	r := &runWarnings{dataset: "Chest", run: "Chest, 2 shots, seed 1", warn: func(s string) { got = append(got, s) }, seen: seen}
	r.Warn("1 of the 2 abnormal shots have a mask that marks nothing")
	if len(got) != 2 || got[0] != "warning: Brain, 2 shots, seed 1: 1 of the 2 abnormal shots have a mask that marks nothing" ||
		got[1] != "warning: Chest, 2 shots, seed 1: 1 of the 2 abnormal shots have a mask that marks nothing" {
		t.Errorf("warnings %q", got)
	}
}

// A dataset named in another case is skipped with the name meant.
func TestRunnableCaseHint(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"Brain_AD", "Chest_AD"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var notes []string
	pairs := Config{Data: root, Datasets: []string{"brain", "Chest"}}.runnable(func(s string) { notes = append(notes, s) })
	if len(pairs) != 1 || pairs[0] != [2]string{"Chest", "Chest"} || len(notes) != 1 || !strings.Contains(notes[0], "brain: not under") ||
		!strings.Contains(notes[0], "(did you mean Brain? names are case-sensitive)") {
		t.Errorf("runnable %v, notes %q", pairs, notes)
	}
}
