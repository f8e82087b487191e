package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"madclip/internal/jsonpath"
	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/model"
	"madclip/model/clip"
	"madclip/torch"
	"madclip/torch/safetensors"
)

// A finished checkpoint saves and loads with its description and text
// features; the backbone it names is rebuilt; a recorded digest that is not
// the weights' (even a short or empty one) is a clean error.
func TestSaveLoadOpen(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		o := model.Options{Object: "Brain", ImageSize: 56} // tinyModel's
		b, m, info, err := tinyModel(t)
		if err != nil {
			return err
		}
		defer b.Free()
		defer m.Free()
		path := filepath.Join(t.TempDir(), "ck.safetensors")
		meta := Meta{Version: Version, Model: m.Opts, Backbone: info, Dataset: "Brain", Masks: true, Shots: 2, Epochs: 1, Epoch: 1}
		if err := Save(path, m, nil, meta); err != nil {
			return err
		}
		ck, err := Load(path, torch.CPU)
		if err != nil {
			return err
		}
		defer ck.Free()
		if ck.Meta.Dataset != "Brain" || ck.Meta.Backbone != info || ck.Meta.Partial() {
			t.Errorf("meta %+v", ck.Meta)
		}
		if tf := ck.Tensors[TextFeaturesKey]; tf == nil || tf.Size(0) != 2 {
			t.Error("no text features")
		}
		// The shots' names, when recorded, are as many as the shots.
		named := ck.Meta
		named.ShotImages = &ShotImages{Normal: []string{"a.png", "b.png"}, Abnormal: []string{"c.png", "d.png"}}
		if err := named.validate(); err == nil || !strings.Contains(err.Error(), "lack the SHA-256s that madclip 0.3.0 records") {
			t.Errorf("two shots named without their SHA-256s: %v", err)
		}
		named.Version = "0.2.2" // written before every checkpoint had them
		if err := named.validate(); err != nil {
			t.Errorf("two shots named: %v", err)
		}
		named.ShotImages.Abnormal = []string{"c.png", "c.png"}
		if err := named.validate(); err == nil || !strings.Contains(err.Error(), `names the shot image "c.png" twice`) {
			t.Errorf("a shot named twice: %v", err)
		}
		named.ShotImages.Abnormal = []string{"c.png", "d.png"}
		for v, want := range map[string]string{"0.0.1": "older than any madclip wrote", "0.1.0": ""} {
			old := named
			old.Version = v
			if err := old.validate(); (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
				t.Errorf("version %s: %v, want %q", v, err, want)
			}
		}
		// With a fingerprint per shot, in lowercase hexadecimal.
		sum := strings.Repeat("ab", 32)
		named.ShotImages.SHA256 = []string{sum, sum, sum, sum}
		if err := named.validate(); err != nil {
			t.Errorf("four shots fingerprinted: %v", err)
		}
		for _, bad := range [][]string{{sum, sum, sum}, {sum, sum, sum, "AB"}} {
			named.ShotImages.SHA256 = bad
			if err := named.validate(); err == nil || !strings.Contains(err.Error(), "SHA-256s are not 4 in lowercase hexadecimal") {
				t.Errorf("fingerprints %q: %v", bad, err)
			}
		}
		named.ShotImages.SHA256 = nil
		named.ShotImages.Abnormal = named.ShotImages.Abnormal[:1]
		if err := named.validate(); err == nil || !strings.Contains(err.Error(), "2 normal and 1 abnormal shot images for 2 shots") {
			t.Errorf("one abnormal shot named of two: %v", err)
		}
		// The epoch selected is one of those done.
		sel := ck.Meta
		sel.SelectedEpoch, sel.ValidAUROC = 1, ptr(0.8)
		sel.Training = &Training{Batch: 16, LR: 1e-3, Beta1: 0.5, Beta2: 0.999}
		if err := sel.validate(); err == nil || !strings.Contains(err.Error(), "trained without --select-on-valid") {
			t.Errorf("an epoch selected without selection: %v", err)
		}
		sel.Training.SelectOnValid = true
		if err := sel.validate(); err != nil {
			t.Errorf("epoch 1 of 1 selected: %v", err)
		}
		// A valid pixel AUROC needs a selected epoch of a model trained
		// with masks, and lies in [0, 1].
		sel.Masks = true
		for _, c := range []struct {
			px    float64
			epoch int
			masks bool
			ok    bool
		}{{0.9, 1, true, true}, {0, 1, true, true}, {1.5, 1, true, false}, {-0.1, 1, true, false}, {math.NaN(), 1, true, false}, {0.9, 0, true, false}, {0.9, 1, false, false}} {
			px := sel
			px.ValidPixelAUROC, px.SelectedEpoch, px.Masks = ptr(c.px), c.epoch, c.masks
			if c.epoch == 0 {
				px.ValidAUROC = nil
			}
			if err := px.validate(); (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "valid pixel AUROC")) {
				t.Errorf("valid pixel AUROC %v at selected epoch %d, masks %v: %v", c.px, c.epoch, c.masks, err)
			}
		}
		// So does a valid image AUROC (0 included).
		for _, c := range []struct {
			auc   float64
			epoch int
			ok    bool
		}{{0, 1, true}, {1, 1, true}, {1.01, 1, false}, {math.NaN(), 1, false}, {0.5, 0, false}} {
			im := sel
			im.ValidAUROC, im.SelectedEpoch = ptr(c.auc), c.epoch
			if err := im.validate(); (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "valid image AUROC")) {
				t.Errorf("valid image AUROC %v at selected epoch %d: %v", c.auc, c.epoch, err)
			}
		}
		// An unfinished run with a threshold, an absurd loss, a negative
		// list index: edited.
		for what, edit := range map[string]func(m *Meta){
			"records a threshold though its training did not finish": func(m *Meta) { m.Epochs, m.Threshold = m.Epoch+1, 0.5 },
			"loss sum of 1e+308 over 1 of 1 steps":                   func(m *Meta) { m.Epochs, m.Step, m.Steps, m.EpochLossSum, m.EpochLossSteps = m.Epoch+1, 1, 1, 1e308, 1 },
			"shots list index -1 is negative":                        func(m *Meta) { m.ShotsIndex = -1 },
		} {
			bad := ck.Meta
			edit(&bad)
			if err := bad.validate(); err == nil || !strings.Contains(err.Error(), what) {
				t.Errorf("%s: %v", what, err)
			}
		}
		// Counts no run reaches were edited: a batch beyond the flag's
		// limit, step counts beyond the largest run's.
		big := sel
		big.Training = &Training{Batch: MaxBatch + 1, LR: 1e-3, Beta1: 0.5, Beta2: 0.999, SelectOnValid: true}
		if err := big.validate(); err == nil || !strings.Contains(err.Error(), "out of range (batch 4097,") {
			t.Errorf("batch %d: %v", MaxBatch+1, err)
		}
		big.Training.Batch = MaxBatch
		if err := big.validate(); err != nil {
			t.Errorf("batch %d: %v", MaxBatch, err)
		}
		for _, steps := range [][2]int64{{0, 1e18}, {1 << 40, 0}} {
			big := sel
			big.Epochs, big.Step, big.Steps = 2, int(steps[0]), steps[1]
			if err := big.validate(); err == nil || !strings.Contains(err.Error(), "more than any run takes") {
				t.Errorf("step %d, %d optimiser steps: %v", steps[0], steps[1], err)
			}
		}
		sel.SelectedEpoch = 2
		if err := sel.validate(); err == nil || !strings.Contains(err.Error(), "selected epoch 2") {
			t.Errorf("epoch 2 of 1 selected: %v", err)
		}
		// A calibration without its threshold was edited.
		cal := ck.Meta
		cal.Calibration = &Calibration{Normal: 3, Abnormal: 3, AUROC: 0.9}
		if err := cal.validate(); err == nil || !strings.Contains(err.Error(), "calibration but no threshold") {
			t.Errorf("calibration without a threshold: %v", err)
		}
		// Class embeddings stretched, or stored as integers, were edited.
		for name, edit := range map[string]struct {
			edit func(st *safetensors.Tensor)
			want string
		}{
			"stretched": {func(st *safetensors.Tensor) {
				for i := 0; i < len(st.Data); i += 4 {
					binary.LittleEndian.PutUint32(st.Data[i:], math.Float32bits(1000*math.Float32frombits(binary.LittleEndian.Uint32(st.Data[i:]))))
				}
			}, "text_features row 0 has length"},
			"bytes": {func(st *safetensors.Tensor) {
				st.DType, st.Data = safetensors.U8, st.Data[:st.NBytes()/4]
			}, "text_features is stored as u8, not floating point"},
		} {
			f, err := safetensors.ReadFile(path)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(f.Tensors, func(st safetensors.Tensor) bool { return st.Name == TextFeaturesKey })
			f.Tensors[i].Data = slices.Clone(f.Tensors[i].Data)
			edit.edit(&f.Tensors[i])
			bad := filepath.Join(t.TempDir(), name+".safetensors")
			if err := safetensors.WriteFile(bad, f.Tensors, f.Metadata); err != nil {
				return err
			}
			if ck, err := Load(bad, torch.CPU); err == nil || !strings.Contains(err.Error(), edit.want) {
				t.Errorf("%s text features: %v", name, err)
				if err == nil {
					ck.Free()
				}
			}
		}
		// A finished checkpoint holding an unfinished run's state had its
		// epoch count edited.
		for _, prefix := range []string{"optim.m.", SelectedPrefix} {
			f, err := safetensors.ReadFile(path)
			if err != nil {
				return err
			}
			extra := f.Tensors[0]
			extra.Name = prefix + extra.Name
			bad := filepath.Join(t.TempDir(), "edited.safetensors")
			if err := safetensors.WriteFile(bad, append(f.Tensors, extra), f.Metadata); err != nil {
				return err
			}
			if ck, err := Load(bad, torch.CPU); err == nil || !strings.Contains(err.Error(), "says training finished (1 of 1 epochs) but holds "+prefix) {
				t.Errorf("finished with %s: %v", prefix, err)
				if err == nil {
					ck.Free()
				}
			}
		}
		huge := ck.Meta
		huge.Model.ImageSize = 2048 // its attention would take gigabytes per image
		if err := huge.validate(); err == nil || !strings.Contains(err.Error(), "image size 2048 is outside 1 to 1024") {
			t.Errorf("image size 2048: %v", err)
		}
		stepped := ck.Meta
		stepped.Step = 3
		if err := stepped.validate(); err == nil || !strings.Contains(err.Error(), "yet 3 steps into the next") {
			t.Errorf("finished with steps into the next epoch: %v", err)
		}
		b2, _, err := ck.OpenBackbone("", torch.CPU)
		if err != nil {
			return err
		}
		b2.Free()
		// Weights recorded by a digest these weights do not have.
		w := filepath.Join(t.TempDir(), "w.safetensors")
		if err := torch.SaveSafetensors(w, b.Params().Map(), nil); err != nil {
			return err
		}
		for _, sum := range []string{"abc", "", strings.Repeat("0", 64)} {
			ck.Meta.Backbone = Backbone{SHA256: sum, File: jsonpath.Path(w), Config: clip.Tiny()}
			if _, _, err := ck.OpenBackbone("", torch.CPU); err == nil || !strings.Contains(err.Error(), "other CLIP weights") {
				t.Errorf("digest %q: %v", sum, err)
			}
		}
		// Weights in a folder whose name is not UTF-8 (Latin-1 "café"):
		// the checkpoint records the name byte for byte and finds them.
		latin := filepath.Join(t.TempDir(), "caf\xe9")
		if err := os.Mkdir(latin, 0o755); err != nil {
			return err
		}
		if err := os.Rename(w, filepath.Join(latin, "w.safetensors")); err != nil {
			return err
		}
		wb, winfo, err := OpenBackbone(Source{Weights: filepath.Join(latin, "w.safetensors")}, o.CLIPOptions(torch.CPU))
		if err != nil {
			return err
		}
		wb.Free()
		latinCk := filepath.Join(t.TempDir(), "latin.safetensors")
		meta.Backbone = winfo
		if err := Save(latinCk, m, nil, meta); err != nil {
			return err
		}
		back, err := Load(latinCk, torch.CPU)
		if err != nil {
			return err
		}
		defer back.Free()
		if back.Meta.Backbone.File != winfo.File {
			t.Errorf("weights recorded as %q, want %q", back.Meta.Backbone.File, winfo.File)
		}
		if wb, used, err := back.OpenBackbone("", torch.CPU); err != nil {
			t.Errorf("weights under a Latin-1 folder: %v", err)
		} else {
			wb.Free()
			if used != string(winfo.File) {
				t.Errorf("loaded %q, want the recorded %q", used, winfo.File)
			}
		}
		if _, _, err := OpenBackbone(Source{Preset: "huge"}, o.CLIPOptions(torch.CPU)); err == nil || !strings.Contains(err.Error(), "huge") {
			t.Errorf("unknown preset: %v", err)
		}
		// A model gone NaN is never written: the file there is kept.
		before, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Nor is one Load would refuse, its values finite but far beyond
		// any trained one.
		name := m.Params().Names()[0]
		for _, v := range []float64{math.NaN(), 1e30} {
			if err := m.Params().Map()[name].Fill(v); err != nil {
				return err
			}
			if err := Save(path, m, nil, meta); err == nil || !strings.Contains(err.Error(), name+" holds") || !strings.Contains(err.Error(), "nothing was written") {
				t.Errorf("save of a model holding %g: %v", v, err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("a model holding %g replaced the checkpoint", v)
			}
		}
		return nil
	})
}

// Adam's second moment is a mean of squares: a negative one marks an
// edited checkpoint (resuming it would turn the model NaN).
func TestCheckParametersMoments(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		good := map[string]*torch.Tensor{"a.weight": torch.FromSlice([]float32{-1, 2}, 2), "optim.m.a.weight": torch.FromSlice([]float32{-3, 0}, 2),
			"optim.v.a.weight": torch.FromSlice([]float32{0, 4}, 2)}
		if err := CheckParameters("ck", good); err != nil {
			t.Errorf("good state: %v", err)
		}
		good["optim.v.a.weight"] = torch.FromSlice([]float32{0, -1}, 2)
		if err := CheckParameters("ck", good); err == nil || !strings.Contains(err.Error(), "ck: optim.v.a.weight holds -1") {
			t.Errorf("negative second moment: %v", err)
		}
		// A first moment is a mean of gradients, bounded as parameters are;
		// a second one of squares may be larger.
		good["optim.v.a.weight"] = torch.FromSlice([]float32{0, 1e9}, 2)
		if err := CheckParameters("ck", good); err != nil {
			t.Errorf("a large second moment: %v", err)
		}
		good["optim.m.a.weight"] = torch.FromSlice([]float32{1e30, 0}, 2)
		if err := CheckParameters("ck", good); err == nil || !strings.Contains(err.Error(), "ck: optim.m.a.weight holds 1e+30") {
			t.Errorf("a first moment of 1e30: %v", err)
		}
		return nil
	})
}

// Descriptions from before 0.3.0 named the model options and the CLIP
// configuration by Go's field names; they read as the same description
// written now, and a current one with those names is refused.
func TestLegacyKeys(t *testing.T) {
	cfg, _ := clip.Preset("tiny")
	want := Meta{Version: Version, Model: model.Options{Object: "Brain", Layers: []int{1, 2, 3, 4}, ImageSize: 112, QuickGELU: true, MeanStd: true, CommonHead: true},
		Backbone: Backbone{Preset: "tiny", Seed: 1, Config: cfg}, Dataset: "Brain", Masks: true, Shots: 2, Epochs: 3, Epoch: 3, Seed: 7}
	legacy := `{"version":"0.2.2","model":{"Object":"Brain","Layers":[1,2,3,4],"ImageSize":112,"QuickGELU":true,"CausalPrompts":false,` +
		`"MeanStd":true,"GenericObject":false,"SharedAdapters":false,"NoSubtraction":false,"CommonHead":true,"Handcrafted":false},` +
		`"backbone":{"preset":"tiny","seed":1,"clip_config":{"EmbedDim":64,"ImageSize":56,"PatchSize":14,"VisionWidth":128,"VisionLayers":4,` +
		`"VisionHeads":2,"ContextLength":77,"VocabSize":49408,"TextWidth":128,"TextLayers":2,"TextHeads":2}},` +
		`"dataset":"Brain","masks":true,"shots":2,"seed":7,"epochs":3,"epoch":3}`
	got, err := parseMeta("old.safetensors", map[string]string{metaKey: legacy}, false)
	if err != nil {
		t.Fatal(err)
	}
	got.Version = Version
	if !reflect.DeepEqual(got, want) {
		t.Errorf("0.2.2 description read as\n%+v\nwant\n%+v", got, want)
	}
	// Written now, the keys are snake_case, and read back the same.
	js, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"image_size":112`, `"quick_gelu":true`, `"common_head":true`, `"embed_dim":64`, `"vision_layers":4`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("written description lacks %s: %s", key, js)
		}
	}
	if again, err := parseMeta("new.safetensors", map[string]string{metaKey: string(js)}, false); err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("current description read back as %+v, %v", again, err)
	}
	current := strings.Replace(legacy, `"0.2.2"`, `"`+Version+`"`, 1)
	if _, err := parseMeta("edited.safetensors", map[string]string{metaKey: current}, false); err == nil {
		t.Error("a current description with Go's field names was accepted")
	}
	for name, want := range map[string]string{"ImageSize": "image_size", "QuickGELU": "quick_gelu", "EmbedDim": "embed_dim",
		"Object": "object", "MeanStd": "mean_std", "image_size": "image_size"} {
		if got := snakeCase(name); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", name, got, want)
		}
	}
}

// A file without a description is named CLIP weights when it holds CLIP's
// tensors, whoever wrote it; one madclip marked that holds neither (a
// checkpoint whose description was removed) is said to be neither.
func TestNotACheckpoint(t *testing.T) {
	for _, c := range []struct {
		md          map[string]string
		clipWeights bool
		want        string
	}{
		{map[string]string{"format": "pt"}, true, "CLIP weights, not a madclip checkpoint"},
		{map[string]string{"converted_by": "madclip"}, true, "CLIP weights, not a madclip checkpoint"},
		{map[string]string{"converted_by": "madclip"}, false, "x.safetensors: written by madclip, but it holds neither a checkpoint's configuration nor CLIP's tensors (its metadata edited?)"},
		{map[string]string{"written_by": "madclip"}, false, "written by madclip, but it holds neither"},
		{map[string]string{"format": "pt"}, false, "not a madclip checkpoint (no configuration in its metadata)"},
	} {
		if _, err := parseMeta("x.safetensors", c.md, c.clipWeights); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, CLIP tensors %v: %v, want %q", c.md, c.clipWeights, err, c.want)
		}
	}
}

// A description of the wrong JSON shape is named in JSON's words.
func TestMetaShapeErrors(t *testing.T) {
	for js, want := range map[string]string{
		`[]`:                          "its configuration is a JSON array, not the object madclip writes",
		`{"shots": "16"}`:             "its configuration's shots is a JSON string, not the number madclip writes there",
		`{"model": []}`:               "its configuration's model is a JSON array, not the object madclip writes there",
		`{"masks": 1}`:                "its configuration's masks is a JSON number, not the boolean madclip writes there",
		`{"shots_file": false}`:       "its configuration's shots_file is a JSON bool, not the string madclip writes there",
		`{"shots": 16, "shots": 4}`:   "its configuration gives shots twice",
		`{"Epochs": 1, "epochs": 60}`: "its configuration gives epochs twice",
		`{"model": {"layers": [1], "image_size": 1, "layers": [2]}}`: "its configuration gives model.layers twice",
		`{"a": [{"x": 1}, {"x": 1, "X": 2}]}`:                        "its configuration gives a[1].X twice",
		`{"THRESHOLD": 0.99}`:                                        "its configuration names THRESHOLD, which madclip writes threshold",
		`{"model": {"Image_Size": 112}}`:                             "names model.Image_Size, which madclip writes image_size",
		`{"backbone": {"clip_config": {"EMBED_DIM": 64}}}`:           "names backbone.clip_config.EMBED_DIM, which madclip writes embed_dim",
		// Nesting is bounded before anything walks it (brackets in strings
		// do not count).
		`{"dataset": ` + strings.Repeat("[", 17) + strings.Repeat("]", 17) + `}`:     "its configuration nests 18 levels deep, where madclip's nests at most 16",
		`{"dataset": ` + strings.Repeat(`{"a":`, 40000) + strings.Repeat("}", 40000): "its configuration nests 40001 levels deep",
		`{"dataset": "` + strings.Repeat(`[\"`, 40) + `"}`:                           "its configuration has no version", // read past the brackets
	} {
		if _, err := parseMeta("x.safetensors", map[string]string{metaKey: js}, false); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", js, err, want)
		}
	}
}

// Stored class embeddings must be two distinct unit vectors of the
// embedding's width.
func TestCheckTextFeatures(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		for _, c := range []struct {
			rows  []float32
			shape []int64
			want  string
		}{
			{[]float32{1, 0, 0, 1}, []int64{2, 2}, ""},
			{[]float32{0.6, 0.8, 0.6, 0.8}, []int64{2, 2}, "holds the same vector for normal and abnormal"},
			{[]float32{1, 0, 0, 2}, []int64{2, 2}, "row 1 has length 2"},
			{[]float32{1, 0, 0, 1}, []int64{2, 2, 1}, "has shape [2 2 1], not [2 2]"},
			{[]float32{1, 0, 0, 1}, []int64{4, 1}, "has shape [4 1]"},
		} {
			err := checkTextFeatures("ck", torch.FromSlice(c.rows, c.shape...), 2)
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Errorf("%v %v: %v, want %q", c.rows, c.shape, err, c.want)
			}
		}
		return nil
	})
}

func ptr(v float64) *float64 { return &v }

// The optimiser state of a partial checkpoint continues its run only when
// whole: both moments of each parameter that has any, some after the first
// step, and none for a name the model lacks.
func TestCheckOptimState(t *testing.T) {
	params := []string{"a", "b"}
	for _, c := range []struct {
		tensors []string
		steps   int64
		params  []string
		want    string
	}{
		{[]string{"a", "b", "optim.m.a", "optim.v.a"}, 5, params, ""}, // b had no gradient yet
		{[]string{"a", "b"}, 0, params, ""},                           // before the first step
		{[]string{"a", "b"}, 5, params, "saved after 5 optimiser steps without the optimiser's state"},
		{[]string{"a", "optim.m.a"}, 5, params, "has optim.m.a without optim.v.a"},
		{[]string{"a", "optim.v.b"}, 5, params, "has optim.v.b without optim.m.b"},
		{[]string{"optim.m.c", "optim.v.c"}, 5, params, "optimiser state optim.m.c for no parameter of the model"},
		{[]string{"optim.m.c", "optim.v.c"}, 5, nil, ""}, // parameters unknown: the header alone
	} {
		err := CheckOptimState(c.tensors, c.steps, c.params)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v after %d steps: %v, want %q", c.tensors, c.steps, err, c.want)
		}
	}
}

// A checkpoint's description without its tensors, or with one of them
// missing, is named for what it is, not taken for CLIP weights.
func TestCheckpointTensorsMissing(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		b, m, info, err := tinyModel(t)
		if err != nil {
			return err
		}
		defer b.Free()
		defer m.Free()
		dir := t.TempDir()
		path := filepath.Join(dir, "ck.safetensors")
		if err := Save(path, m, nil, Meta{Version: Version, Model: m.Opts, Backbone: info, Dataset: "Brain", Masks: true, Shots: 2, Epochs: 1, Epoch: 1}); err != nil {
			return err
		}
		f, err := safetensors.ReadFile(path)
		if err != nil {
			return err
		}
		defer f.Close()
		empty := filepath.Join(dir, "empty.safetensors")
		if err := safetensors.WriteFile(empty, nil, f.Metadata); err != nil {
			return err
		}
		if _, err := Load(empty, torch.CPU); err == nil || err.Error() != empty+": a checkpoint's description, but no tensors: the trained model is missing" {
			t.Errorf("no tensors: %v", err)
		}
		var fewer []safetensors.Tensor
		for _, x := range f.Tensors {
			if x.Name != "adapters.normal.0.det.weight" {
				fewer = append(fewer, x)
			}
		}
		short := filepath.Join(dir, "short.safetensors")
		if err := safetensors.WriteFile(short, fewer, f.Metadata); err != nil {
			return err
		}
		ck, err := Load(short, torch.CPU)
		if err != nil {
			return err
		}
		defer ck.Free()
		want := short + ": its trained parameters are not those of the model it describes (damaged or edited): missing adapters.normal.0.det.weight"
		if _, err := ck.Model(b, reftest.Tokenizer(t)); err == nil || err.Error() != want {
			t.Errorf("a parameter missing: %v\nwant %s", err, want)
		}
		return nil
	})
}

// tinyModel is MadCLIP for Brain at 56 px over the tiny preset (seed 1),
// with the backbone's description.
func tinyModel(t *testing.T) (*clip.Model, *model.MadCLIP, Backbone, error) {
	o := model.Options{Object: "Brain", ImageSize: 56}
	b, info, err := OpenBackbone(Source{Preset: "tiny", Seed: 1}, o.CLIPOptions(torch.CPU))
	if err != nil {
		return nil, nil, Backbone{}, err
	}
	m, err := model.New(b, reftest.Tokenizer(t), o, 3)
	if err != nil {
		b.Free()
		return nil, nil, Backbone{}, err
	}
	return b, m, info, nil
}
