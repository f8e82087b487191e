package authors

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/infer"
	"madclip/internal/cliptest"
	"madclip/internal/reftest"
	"madclip/model"
	"madclip/model/clip"
	"madclip/torch"
	"madclip/torch/safetensors"
	"madclip/train"
)

const size = 56

// fixture trains a tiny model here (1 epoch on synthetic Brain data) and
// writes the tiny CLIP's weights for the Python side.
type fixture struct {
	root, ck, clipFile string
	layers             int
}

func newFixture(t *testing.T, o model.Options) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{root: filepath.Join(dir, "data"), ck: filepath.Join(dir, "ours.safetensors"), clipFile: filepath.Join(dir, "clip.safetensors")}
	if err := dataset.Synth(f.root, dataset.SynthOptions{Seed: 4, Valid: 4, Test: 3, Size: 32, Datasets: []string{"Brain"}}); err != nil {
		t.Fatal(err)
	}
	o.ImageSize = size
	err := torch.Do(func() error {
		res, err := train.Run(context.Background(), train.Config{Data: f.root, Dataset: "Brain", Shots: 2, Seed: 5, Epochs: 1,
			Preset: "tiny", BackboneSeed: 1, Model: o, Out: f.ck}, reftest.Tokenizer(t), train.Silent{})
		if err != nil {
			return err
		}
		f.layers = len(res.Meta.Model.Layers)
		m, err := clip.New(clip.Tiny(), clip.Options{}, 1)
		if err != nil {
			return err
		}
		defer m.Free()
		return torch.SaveSafetensors(f.clipFile, m.Params().Map(), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) python(t *testing.T, mode, ck, pth string) string {
	t.Helper()
	py := reftest.Python(t, "torch")
	out, err := exec.Command(py, filepath.Join("testdata", "authors_layout.py"), mode, f.clipFile, ck, fmt.Sprint(f.layers), pth).CombinedOutput()
	if err != nil {
		t.Fatalf("authors_layout.py %s: %v\n%s", mode, err, out)
	}
	return strings.TrimSpace(string(out))
}

func tinyImport(dataset string) ImportOptions {
	return ImportOptions{Dataset: dataset, ImageSize: size, Preset: "tiny", BackboneSeed: 1}
}

func importFile(t *testing.T, pth, out string, o ImportOptions) (checkpoint.Meta, error) {
	t.Helper()
	var meta checkpoint.Meta
	err := torch.Do(func() error {
		var err error
		meta, err = Import(pth, out, o, reftest.Tokenizer(t))
		return err
	})
	return meta, err
}

func exportFile(t *testing.T, ck, out string) error {
	t.Helper()
	return torch.Do(func() error {
		_, err := Export(ck, "", out, reftest.Tokenizer(t))
		return err
	})
}

// trained reads a checkpoint's trained tensors as raw bytes.
func trained(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	for _, ts := range f.Tensors {
		out[ts.Name] = string(ts.Data)
	}
	return out
}

func sameTensors(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d tensors vs %d", what, len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: %s differs", what, k)
		}
	}
}

// predictions scores the synthetic test images with a checkpoint.
func predictions(t *testing.T, ck, root string) []infer.Result {
	t.Helper()
	var out []infer.Result
	err := torch.Do(func() error {
		p, err := infer.Open(ck, "", reftest.Tokenizer(t), torch.CPU)
		if err != nil {
			return err
		}
		defer p.Close()
		split, err := dataset.ReadSplit(root, "Brain", "test")
		if err != nil {
			return err
		}
		return p.Stream(split.Samples, infer.StreamOptions{Batch: 4}, func(_ dataset.Decoded, r infer.Result) error {
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A .pth in the authors' exact layout, written by PyTorch from a model
// trained here, imports to the same tensors and predicts the same maps;
// export writes what their modules load strictly; export → import is the
// identity.
func TestImportExportRoundTrip(t *testing.T) {
	f := newFixture(t, model.Options{})
	dir := t.TempDir()
	theirs := filepath.Join(dir, "Brain.pth")
	f.python(t, "write", f.ck, theirs)

	imported := filepath.Join(dir, "imported.safetensors")
	meta, err := importFile(t, theirs, imported, tinyImport("Brain"))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Imported == nil || string(meta.Imported.File) != theirs || len(meta.Imported.SHA256) != 64 || !meta.Masks ||
		meta.ShotsFile != "" || meta.ShotImages != nil || meta.Threshold != 0 || meta.Model.Object != "Brain" {
		t.Errorf("imported meta %+v", meta)
	}
	ours, back := trained(t, f.ck), trained(t, imported)
	sameTensors(t, "imported vs trained", ours, back)
	p1, p2 := predictions(t, f.ck, f.root), predictions(t, imported, f.root)
	for i := range p1 {
		if p1[i].Score != p2[i].Score || p1[i].DetScore != p2[i].DetScore {
			t.Errorf("image %d: scores %v/%v vs %v/%v", i, p1[i].Score, p1[i].DetScore, p2[i].Score, p2[i].DetScore)
		}
		for j := range p1[i].Map {
			if p1[i].Map[j] != p2[i].Map[j] {
				t.Fatalf("image %d: maps differ at %d", i, j)
			}
		}
	}

	exported := filepath.Join(dir, "exported.pth")
	if err := exportFile(t, imported, exported); err != nil {
		t.Fatal(err)
	}
	if got := f.python(t, "check", f.ck, exported); got != "ok" {
		t.Errorf("their modules on the export: %s", got)
	}
	again := filepath.Join(dir, "again.safetensors")
	if _, err := importFile(t, exported, again, tinyImport("Brain")); err != nil {
		t.Fatal(err)
	}
	sameTensors(t, "export → import", back, trained(t, again))
}

// A hand-crafted model (their text_mood=fix) goes out with its text
// features and comes back as the same model.
func TestHandcraftedRoundTrip(t *testing.T) {
	f := newFixture(t, model.Options{Handcrafted: true})
	dir := t.TempDir()
	exported := filepath.Join(dir, "fix.pth")
	if err := exportFile(t, f.ck, exported); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.safetensors")
	meta, err := importFile(t, exported, again, tinyImport("Brain"))
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Model.Handcrafted {
		t.Error("imported model is not hand-crafted")
	}
	sameTensors(t, "hand-crafted export → import", trained(t, f.ck), trained(t, again))
}

// What cannot be imported or exported says why, naming the file.
func TestImportExportErrors(t *testing.T) {
	f := newFixture(t, model.Options{})
	dir := t.TempDir()
	theirs := filepath.Join(dir, "Brain.pth")
	f.python(t, "write", f.ck, theirs)
	out := filepath.Join(dir, "out.safetensors")

	otherCLIP := tinyImport("Brain")
	otherCLIP.BackboneSeed = 2
	knee := tinyImport("Knee")
	layers := tinyImport("Brain")
	layers.Layers = []int{1, 2}
	// Their four adapters cannot sit on a two-block CLIP.
	small := clip.Tiny()
	small.VisionLayers = 2
	smallWeights := filepath.Join(dir, "two-blocks.safetensors")
	cliptest.WriteConfig(t, smallWeights, small, 1, torch.Float32)
	twoBlocks := tinyImport("Brain")
	twoBlocks.Preset, twoBlocks.Weights = "", smallWeights
	// Their file with a NaN, and with a weight of 1e30, in an adapter; with
	// integer adapters or contexts; with a tensor of the text encoder gone.
	fc1, ctx := "d['normal_det_adapters']['0.fc1.0.weight']", "d['prompt_maker_normal']['prompt_learner.ctx.normal_front']"
	damaged := map[string]string{
		"nan":     fc1 + "[0, 0] = float('nan')",
		"huge":    fc1 + "[0, 0] = 1e30",
		"int":     fc1 + " = " + fc1 + ".long()",
		"intctx":  ctx + " = " + ctx + ".int()",
		"partial": "del d['prompt_maker_abnormal']['text_encoder.ln_final.bias']",
		"tenan":   "d['prompt_maker_normal']['text_encoder.ln_final.weight'][0] = float('nan')",
		"bias":    "d['normal_det_adapters']['0.fc1.0.bias'] = torch.zeros(3)",
		"width":   "d['prompt_maker_normal']['prompt_learner.ctx.normal_end'] = torch.zeros(7, 8, 3)",
		"clash":   "d['normal_det_adapters.0.fc1.0.weight'] = torch.zeros(3)",
		"top":     "d['extra_top'] = torch.zeros(1)",
		"both":    "d['text_features_fix'] = torch.zeros(8, 2)",
		"noctx":   "del " + ctx,
		"abctx":   "[d['prompt_maker_normal'].pop('prompt_learner.ctx.normal_' + p) for p in ('end', 'front', 'middle')]",
	}
	for name, change := range damaged {
		p := filepath.Join(dir, name+".pth")
		code := "import sys, torch\nd = torch.load(sys.argv[1])\n" + change + "\ntorch.save(d, sys.argv[2])"
		if out, err := exec.Command(reftest.Python(t, "torch"), "-c", code, theirs, p).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		damaged[name] = p
	}
	garbage := filepath.Join(dir, "garbage.pth")
	os.WriteFile(garbage, []byte("not a pickle"), 0o644)
	for _, c := range []struct {
		pth  string
		o    ImportOptions
		want string
	}{
		{theirs, otherCLIP, "other CLIP weights"},
		{theirs, knee, "--object"},
		{theirs, layers, "--layers"},
		{theirs, twoBlocks, "more than the 2 blocks of this backbone"},
		{garbage, tinyImport("Brain"), garbage},
		{damaged["nan"], tinyImport("Brain"), "holds NaN"},
		{damaged["huge"], tinyImport("Brain"), "far beyond any trained value"},
		{damaged["int"], tinyImport("Brain"), "normal_det_adapters.0.fc1.0.weight holds i64 values"},
		{damaged["intctx"], tinyImport("Brain"), "prompt_learner.ctx.normal_front holds i32 values"},
		{damaged["partial"], tinyImport("Brain"), "lacks prompt_maker_abnormal.text_encoder.ln_final.bias (1 of"},
		{damaged["tenan"], tinyImport("Brain"), "text encoder's ln_final.weight holds NaN: a damaged file"},
		{damaged["bias"], tinyImport("Brain"), "unexpected tensor normal_det_adapters.0.fc1.0.bias"},
		{damaged["width"], tinyImport("Brain"), "prompt_learner.ctx.normal_end has shape [7 8 3], want [7, 8,"},
		{damaged["clash"], tinyImport("Brain"), "two tensors are named normal_det_adapters.0.fc1.0.weight"},
		{damaged["top"], tinyImport("Brain"), "unexpected tensor extra_top"},
		{damaged["both"], tinyImport("Brain"), "both text_features_fix (hand-crafted prompts) and prompt_maker_normal.prompt_learner.ctx.normal_"},
		{damaged["noctx"], tinyImport("Brain"), "no prompt_maker_normal.prompt_learner.ctx.normal_front, though the other learned contexts are there"},
		{damaged["abctx"], tinyImport("Brain"), "only the abnormal prompts are learned"},
		{f.ck, tinyImport("Brain"), "torch.save file"},
		{filepath.Join(dir, "missing.pth"), tinyImport("Brain"), "missing.pth"},
	} {
		if _, err := importFile(t, c.pth, out, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("import %s %+v: %v, want an error mentioning %q", filepath.Base(c.pth), c.o, err, c.want)
		}
	}
	knee.Object, knee.Masks = "knee MRI", new(bool)
	if _, err := importFile(t, theirs, out, knee); err != nil {
		t.Errorf("with --object and --masks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "garbage.safetensors")); err == nil {
		t.Error("a failed import wrote a file")
	}
	// An ablation their code cannot run is refused.
	g := newFixture(t, model.Options{SharedAdapters: true})
	if err := exportFile(t, g.ck, filepath.Join(dir, "x.pth")); err == nil || !strings.Contains(err.Error(), "--shared-adapters") {
		t.Errorf("export of shared adapters: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pth")); err == nil {
		t.Error("a refused export wrote a file")
	}
}
