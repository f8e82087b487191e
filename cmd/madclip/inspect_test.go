package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"madclip/checkpoint"
	"madclip/internal/cliptest"
	"madclip/metrics"
	"madclip/torch"
	"madclip/torch/safetensors"
	"madclip/weights"
)

// inspect describes a checkpoint from its header: the values printed are
// the recorded ones, --json gives the description itself, and what is not
// a checkpoint is named as such.
func TestInspect(t *testing.T) {
	root, ck := trained(t)
	m, err := checkpoint.ReadMeta(ck)
	if err != nil {
		t.Fatal(err)
	}
	o, e, code := madclip(t, nil, "inspect", ck)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{
		ck + ": a madclip checkpoint (format " + m.Version + ", written by " + m.WrittenBy + ")",
		`dataset    Brain, object word "Brain"; image score: the anomaly map's maximum (trained with masks)`,
		fmt.Sprintf("shots      %d shots per class, the authors' list %s", m.Shots, m.ShotsFile),
		"normal:   " + m.ShotImages.Normal[0] + ", ",
		"abnormal: " + m.ShotImages.Abnormal[0] + ", ",
		fmt.Sprintf("backbone   the tiny preset's random weights, seed %d\n", m.Backbone.Seed),
		fmt.Sprintf("model      %d px, blocks 1, 2, 3, 4 tapped; as the paper", m.Model.ImageSize),
		fmt.Sprintf("training   %d epochs, batch 16, Adam lr 0.001 betas (0.5, 0.999)", m.Epochs),
		"           data " + root + "\n",
		"status     finished in ",
		fmt.Sprintf("threshold  %s, F1-max on %d normal and %d abnormal held-out valid images (image AUROC there %.2f%%); Youden point %s",
			metrics.FormatThreshold(m.Threshold), m.Calibration.Normal, m.Calibration.Abnormal, 100*m.Calibration.AUROC, metrics.FormatThreshold(m.ThresholdYouden)),
	} {
		if !strings.Contains(o, want) {
			t.Errorf("inspect lacks %q:\n%s", want, o)
		}
	}
	// --json is the recorded description.
	o, e, code = madclip(t, nil, "inspect", "--json", ck)
	var got checkpoint.Meta
	if err := json.Unmarshal([]byte(o), &got); code != 0 || err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("--json: exit %d, %v, %s\n%+v\nwant %+v", code, err, e, got, m)
	}

	// An unfinished run trained on weights that have moved, with an
	// ablation and the epoch selection: each is said.
	dir := t.TempDir()
	edited := filepath.Join(dir, "edited.safetensors")
	gone := filepath.Join(dir, "gone", "ViT-L-14.safetensors")
	rewriteCheckpoint(t, ck, edited, func(meta map[string]any, _ []safetensors.Tensor) {
		b := meta["backbone"].(map[string]any)
		delete(b, "preset")
		delete(b, "seed")
		b["weights_digest"] = strings.Repeat("ab", 32)
		b["weights_file"] = gone
		meta["model"].(map[string]any)["shared_adapters"] = true
		meta["epoch"], meta["step"], meta["optimizer_steps"] = 1, 2, 6
		meta["selected_epoch"], meta["valid_auroc"] = 1, 0.875
		meta["training"].(map[string]any)["select_on_valid"] = true
		delete(meta, "threshold")
		delete(meta, "threshold_youden")
		delete(meta, "calibration")
	})
	o, e, code = madclip(t, nil, "inspect", edited)
	if code != 0 {
		t.Fatalf("edited: exit %d: %s", code, e)
	}
	for _, want := range []string{
		"backbone   CLIP weights, tiny; digest " + strings.Repeat("ab", 32),
		"file " + gone + " (not there now, and no file with its digest in ",
		"tapped; ablation: shared adapters\n",
		// 6 optimiser steps: not the 16 + 2 of epoch 2, step 2 of its run.
		fmt.Sprintf("status     unfinished: interrupted at epoch 2 of %d, after its step 2; it cannot be resumed: its resume state (epoch 2, step 2, 6 optimiser steps) does not fit the run's 16 steps per epoch", m.Epochs),
		fmt.Sprintf("selection  best so far epoch 1 (1 of %d done), valid image AUROC 87.50%%", m.Epochs),
		"threshold  none yet: training chooses it on the held-out valid images when it finishes",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("edited: inspect lacks %q:\n%s", want, o)
		}
	}

	// With the steps right, what is missing is Adam's state (a finished
	// checkpoint has none).
	steps := filepath.Join(dir, "steps.safetensors")
	rewriteCheckpoint(t, edited, steps, func(meta map[string]any, _ []safetensors.Tensor) { meta["optimizer_steps"] = 18 })
	if o, e, code := madclip(t, nil, "inspect", steps); code != 0 || !strings.Contains(o, "; it cannot be resumed: it was saved after 18 optimiser steps without the optimiser's state") {
		t.Errorf("no optimiser state: exit %d, %s\n%s", code, e, o)
	}

	// Its data gone from where it was: resuming needs --data.
	noData := filepath.Join(dir, "nodata.safetensors")
	rewriteCheckpoint(t, edited, noData, func(meta map[string]any, _ []safetensors.Tensor) {
		meta["training"].(map[string]any)["data"] = filepath.Join(dir, "moved-away")
	})
	if o, e, code := madclip(t, nil, "inspect", noData); code != 0 || !strings.Contains(o, "data "+filepath.Join(dir, "moved-away")+" (not there now: resuming needs --data where it is)\n") {
		t.Errorf("data gone: exit %d, %s\n%s", code, e, o)
	}

	// Where the weights are now: found elsewhere by their digest, there
	// and the same, there but other weights, there but not weights.
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // for weights.Digest below
	wdir := t.TempDir()
	tiny := tinyWeights(t, wdir)
	digest, err := weights.Digest(tiny)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(wdir, "other.safetensors")
	cliptest.WriteTiny(t, other, 6, torch.Float32)
	notWeights := filepath.Join(wdir, "notes.safetensors")
	os.WriteFile(notWeights, []byte("hello"), 0o644)
	fifo := filepath.Join(wdir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, dir, want string
	}{
		{gone, wdir, "file " + gone + " (not there now; predict and eval will take " + tiny + ", which holds the same weights)"},
		{tiny, "", "file " + tiny + " (there, the same weights)"},
		{other, "", "file " + other + " (there, but holding other weights now ("},
		{notWeights, "", "file " + notWeights + " (there, but not readable as CLIP weights: "},
		{fifo, "", "file " + fifo + " (there, but a named pipe, not weights: give the weights with --weights)"},
		{fifo, wdir, "file " + fifo + " (there, but a named pipe, not weights; predict and eval will take " + tiny + ", which holds the same weights)"},
	} {
		moved := filepath.Join(dir, "moved.safetensors")
		rewriteCheckpoint(t, edited, moved, func(meta map[string]any, _ []safetensors.Tensor) {
			meta["backbone"].(map[string]any)["weights_digest"] = digest
			meta["backbone"].(map[string]any)["weights_file"] = c.file
		})
		o, e, code := madclip(t, []string{"MADCLIP_WEIGHTS=" + c.dir}, "inspect", moved)
		if code != 0 || !strings.Contains(o, c.want) {
			t.Errorf("weights %s: exit %d, %s\nlacks %q:\n%s", c.file, code, e, c.want, o)
		}
	}

	scan := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect"}, "inspect: give one CHECKPOINT"},
		{[]string{"inspect", ck, ck}, "inspect: give one CHECKPOINT"},
		{[]string{"inspect", scan}, "000.png: a PNG image, not a safetensors file"},
		{[]string{"inspect", filepath.Join(dir, "none.safetensors")}, "none.safetensors: no such file"},
		{[]string{"inspect", tinyWeights(t, dir)}, "CLIP weights, not a madclip checkpoint"},
	} {
		_, e, code := madclip(t, nil, c.args...)
		wantFailure(t, c.want, e, code)
	}

	// Described from memory: an import, other blocks, the generic object
	// word, and strings that would steer the terminal.
	m.Model.Layers, m.Model.GenericObject = []int{2, 4}, true
	m.WrittenBy = "madclip\x1b[31m\n9"
	m.Imported = &checkpoint.Imported{Format: "MadCLIP authors' checkpoint\u202e", File: "x.pth", SHA256: strings.Repeat("cd", 32)}
	var buf strings.Builder
	describeCheckpoint(&buf, "my ck;rm x.safetensors", m, nil)
	text := buf.String()
	for _, want := range []string{
		`written by madclip\x1b[31m\n9)`,
		`prompts say "medical image" (ablation: generic object word; the dataset's is "Brain")`,
		"shots      8 shots per class, as given to madclip import (which images, and how chosen, not recorded)",
		"model      112 px, blocks 2, 4 tapped; blocks other than the paper's 1, 2, 3, 4, ablation: generic object word",
		`training   elsewhere: imported from x.pth (MadCLIP authors' checkpoint\u202e, SHA-256 ` + strings.Repeat("cd", 32) + ")",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	if strings.ContainsAny(text, "\x1b\u202e") || strings.Contains(text, "status") {
		t.Errorf("a raw control character, or a status for an import:\n%s", text)
	}
	m.Imported, m.Epoch = nil, 1 // unfinished: the command to continue is quoted for the shell
	buf.Reset()
	describeCheckpoint(&buf, "my ck;rm x.safetensors", m, nil)
	if text := buf.String(); !strings.Contains(text, "continue it with madclip train --resume 'my ck;rm x.safetensors'\n") {
		t.Errorf("unquoted resume command:\n%s", text)
	}
}
