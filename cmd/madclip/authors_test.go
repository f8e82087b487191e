package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"madclip/checkpoint"
	"madclip/internal/cliptest"
	"madclip/model"
	"madclip/model/clip"
	"madclip/torch"
)

// export authors then import authors through the binary: the imported
// checkpoint predicts what the original does.
func TestAuthorsExportImportCLI(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	pth := filepath.Join(dir, "Brain.pth")
	o, e, code := madclip(t, nil, "export", "authors", ck, pth)
	if code != 0 || !strings.Contains(o, "wrote "+pth+" (trained on preset tiny") || strings.Contains(o, "test.py") {
		t.Fatalf("export: exit %d %s %s", code, o, e)
	}
	// The command export prints reads the file back as this model, its
	// threshold included.
	_, readBack, ok := strings.Cut(o, "read back with: madclip ")
	back := strings.TrimSuffix(pth, ".pth") + "-imported.safetensors"
	if !ok || strings.ContainsAny(dir, " '") {
		t.Fatalf("export printed no usable read-back command: %q", o)
	}
	o, e, code = madclip(t, nil, strings.Fields(readBack)...)
	if code != 0 || !strings.Contains(o, "wrote "+back) || !strings.Contains(o, "anomaly map") {
		t.Fatalf("import: exit %d %s %s", code, o, e)
	}
	img := filepath.Join(root, "Brain_AD", "test", "Ungood", "img", "000.png")
	var scores []prediction
	var provs []map[string]any
	for _, c := range []string{ck, back} {
		o, e, code := madclip(t, nil, "predict", img, "--checkpoint", c, "--json", "--device", "cpu")
		if code != 0 {
			t.Fatalf("predict with %s: %s", c, e)
		}
		var pr prediction
		var raw struct {
			Provenance map[string]any `json:"provenance"`
		}
		if err := json.Unmarshal([]byte(o), &pr); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(o), &raw)
		scores, provs = append(scores, pr), append(provs, raw.Provenance)
	}
	if scores[0].Score != scores[1].Score || scores[0].DetScore != scores[1].DetScore || scores[0].Label != scores[1].Label {
		t.Errorf("original %+v, imported %+v", scores[0], scores[1])
	}
	// Their file holds no seed or shots list: the imported model claims
	// none; its threshold is the original's, given at import.
	if provs[0]["threshold"] != provs[1]["threshold"] || provs[1]["threshold_origin"] != "given when imported (madclip import --threshold)" ||
		provs[1]["seed"] != nil || provs[1]["shots_file"] != nil || provs[0]["seed"] == nil {
		t.Errorf("provenance of the original %v, of the imported %v", provs[0], provs[1])
	}
	_, e, code = madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--preset", "tiny", "--threshold", "0", "--out", back+"2.safetensors")
	wantFailure(t, "--threshold 0", e, code)
	// Without --threshold the labels are at an uncalibrated 0.5, and every
	// output says so: stderr, the CSV's threshold_origin.
	bare := filepath.Join(dir, "bare.safetensors")
	if _, e, code := madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--preset", "tiny", "--image-size", "112", "--out", bare); code != 0 {
		t.Fatalf("import without a threshold: %s", e)
	}
	// It has no Youden point either.
	_, e, code = madclip(t, nil, "predict", img, "--checkpoint", bare, "--threshold", "youden", "--device", "cpu")
	wantFailure(t, "--threshold youden: "+bare+" records no Youden point (uncalibrated: imported", e, code)
	// --quiet drops progress, not this warning.
	o, e, code = madclip(t, nil, "predict", img, "--checkpoint", bare, "--csv", "--device", "cpu", "--quiet")
	rows, err := csv.NewReader(strings.NewReader(o)).ReadAll()
	if code != 0 || err != nil || len(rows) != 2 || rows[1][8] != "0.5" || !strings.HasPrefix(rows[1][9], "uncalibrated: imported") || !strings.Contains(e, "uncalibrated") {
		t.Errorf("predict with an imported checkpoint without threshold: exit %d, %q, stderr %s", code, rows, e)
	}
	// Outputs never overwrite inputs; missing arguments are explained.
	_, e, code = madclip(t, nil, "export", "authors", ck, ck)
	wantFailure(t, "refusing to overwrite an input", e, code)
	_, e, code = madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--preset", "tiny", "--out", pth)
	wantFailure(t, "same file", e, code)
	_, e, code = madclip(t, nil, "import", "authors", "--dataset", "Brain", "--preset", "tiny", "--out", back)
	wantFailure(t, "IN.pth", e, code)
	_, e, code = madclip(t, nil, "import", "authors", ck, "--dataset", "Brain", "--preset", "tiny", "--image-size", "112", "--out", back)
	wantFailure(t, ck, e, code)
	// Their checkpoint given to the weights converter says where it goes.
	_, e, code = madclip(t, nil, "weights", "convert", pth, filepath.Join(t.TempDir(), "w.safetensors"))
	wantFailure(t, "convert "+pth+": the authors' MadCLIP checkpoint, not CLIP weights: madclip import authors turns it into a madclip checkpoint", e, code)

	// On weights moved since, given with --weights: the command to read
	// the file back names them where they are now.
	wdir := t.TempDir()
	w := filepath.Join(wdir, "tiny1.safetensors")
	cliptest.WriteTiny(t, w, 1, torch.Float32) // the preset's weights, as a file
	onWeights := filepath.Join(dir, "on-weights.safetensors")
	if _, e, code := madclip(t, nil, "import", "authors", pth, "--dataset", "Brain", "--weights", w, "--image-size", "112", "--out", onWeights); code != 0 {
		t.Fatalf("import on a weights file: %s", e)
	}
	moved := filepath.Join(wdir, "moved.safetensors")
	if err := os.Rename(w, moved); err != nil {
		t.Fatal(err)
	}
	o, e, code = madclip(t, nil, "export", "authors", onWeights, filepath.Join(dir, "again.pth"), "--weights", moved)
	if code != 0 || !strings.Contains(o, " --weights "+moved+" ") {
		t.Errorf("export with the weights moved: exit %d, %s\n%s", code, e, o)
	}
}

// The hint names the authors' test.py command only for a checkpoint their
// code can run: OpenAI's ViT-L/14-336 weights.
func TestExportHint(t *testing.T) {
	vitl := checkpoint.Meta{Dataset: "Liver", Model: model.Options{ImageSize: 240, Layers: []int{6, 12, 18, 24}},
		Backbone: checkpoint.Backbone{Digest: "ab12", File: "/w/ViT-L-14-336px.safetensors", Config: mustPreset(t, "ViT-L/14-336")}}
	h := exportHint("mine/Liver.pth", vitl)
	if !strings.Contains(h, "python test.py --obj Liver --save_path mine/ --img_size 240 --features_list 6 12 18 24") ||
		strings.Contains(h, "text_mood") || strings.Contains(h, "rename") {
		t.Errorf("ViT-L/14-336 weights: %q", h)
	}
	// Their test.py finds only {Obj}.pth.
	if h := exportHint("liver16.pth", vitl); !strings.Contains(h, "--save_path ./ ") || !strings.Contains(h, "looks for Liver.pth in that folder") {
		t.Errorf("a file not named Liver.pth: %q", h)
	}
	vitl.Model.Handcrafted = true
	if h := exportHint("Liver.pth", vitl); !strings.Contains(h, "--text_mood fix") {
		t.Errorf("hand-crafted prompts: %q", h)
	}
	for name, b := range map[string]checkpoint.Backbone{
		"random ViT-L/14-336": {Preset: "ViT-L/14-336", Seed: 1, Config: mustPreset(t, "ViT-L/14-336")},
		"ViT-B/16 weights":    {Digest: "cd34", File: "/w/b16.safetensors", Config: mustPreset(t, "ViT-B/16")},
	} {
		m := vitl
		m.Backbone = b
		if h := exportHint("x.pth", m); strings.Contains(h, "test.py") || !strings.Contains(h, "cannot use it") {
			t.Errorf("%s: %q", name, h)
		}
	}
	// The import that reads the file back as this model, whose settings the
	// .pth does not hold.
	m := vitl
	m.Model.Object, m.Model.ImageSize, m.Model.Layers, m.Shots, m.Masks = "liver CT", 112, []int{1, 2, 3, 4}, 8, true
	m.Backbone = checkpoint.Backbone{Preset: "tiny", Seed: 1, Config: clip.Tiny()}
	want := "read back with: madclip import authors 'my dir/Liver.pth' --dataset Liver --preset tiny --object 'liver CT' --layers 1,2,3,4 --image-size 112 --shots 8 --masks=true --out 'my dir/Liver-imported.safetensors'\n"
	if h := exportHint("my dir/Liver.pth", m); !strings.HasSuffix(h, want) {
		t.Errorf("read-back hint:\n%q\nwant it to end with\n%q", h, want)
	}
	// A calibrated threshold travels in the command, to the last digit.
	m.Threshold = 0.52805312345678
	if h := exportHint("my dir/Liver.pth", m); !strings.Contains(h, " --masks=true --threshold 0.52805312345678 --out ") {
		t.Errorf("read-back hint with a threshold: %q", h)
	}
	m.Backbone.Seed = 2
	if h := exportHint("Liver.pth", m); strings.Contains(h, "read back") {
		t.Errorf("a preset of seed 2, which import cannot build: %q", h)
	}
	if h := exportHint("Liver.pth", vitl); !strings.Contains(h, "--weights /w/ViT-L-14-336px.safetensors") {
		t.Errorf("ViT-L/14-336 weights: no read-back hint in %q", h)
	}
}

// mustPreset is the named CLIP preset's architecture.
func mustPreset(t *testing.T, name string) clip.Config {
	t.Helper()
	c, ok := clip.Preset(name)
	if !ok {
		t.Fatalf("no preset %q", name)
	}
	return c
}
