package infer

import (
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/internal/reftest"
	"madclip/model"
	"madclip/torch"
	"madclip/train"
)

// .npy files read back with NumPy.
func TestWriteNPY(t *testing.T) {
	py := reftest.Python(t, "numpy")
	path := filepath.Join(t.TempDir(), "m.npy")
	data := []float32{0, 0.5, -1.25, 3, float32(math.Inf(1)), 7}
	if err := WriteNPY(path, data, 2, 3); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", "import numpy, json, sys; a = numpy.load(sys.argv[1]); print(json.dumps([list(a.shape), str(a.dtype), a[1, 2].item(), a[0, 2].item()]))", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	json.Unmarshal(out, &got)
	if got[1] != "float32" || got[2].(float64) != 7 || got[3].(float64) != -1.25 {
		t.Errorf("numpy read %v", got)
	}
	if shape := got[0].([]any); shape[0].(float64) != 2 || shape[1].(float64) != 3 {
		t.Errorf("shape %v", shape)
	}
	if err := WriteNPY(path, data, 4, 4); err == nil {
		t.Error("shape mismatch accepted")
	}
}

// TestTurbo compares the colour map with matplotlib's "turbo" at 1,001
// points, bin edges included: every colour within one 8-bit step.
func TestTurbo(t *testing.T) {
	py := reftest.Python(t, "matplotlib")
	script := `import matplotlib, json
c = matplotlib.colormaps["turbo"]
print(json.dumps([[round(255 * v) for v in c(i / 1000)[:3]] for i in range(1001)]))`
	out, err := exec.Command(py, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][3]int
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, w := range want {
		c := Turbo(float64(i) / 1000)
		for k, v := range [3]uint8{c.R, c.G, c.B} {
			if d := int(v) - w[k]; d < -1 || d > 1 {
				if bad++; bad <= 5 {
					t.Errorf("Turbo(%.3f) = %v, matplotlib %v", float64(i)/1000, c, w)
				}
				break
			}
		}
	}
	if Turbo(-3) != Turbo(0) || Turbo(7) != Turbo(1) || Turbo(math.NaN()) != Turbo(0) {
		t.Error("values outside [0, 1] are not clamped")
	}
}

func TestHeatmapSizeAndBlend(t *testing.T) {
	orig := imaging.NewRGB(50, 30) // black
	amap := make([]float32, 16*16)
	for i := range amap {
		amap[i] = 1 // everything anomalous: red over black
	}
	h := Heatmap(orig, amap, 16, 0.5)
	if h.Bounds().Dx() != 50 || h.Bounds().Dy() != 30 {
		t.Fatalf("size %v", h.Bounds())
	}
	c := h.RGBAAt(2, 2)
	want := Turbo(1)
	if math.Abs(float64(c.R)-float64(want.R)/2) > 1 || c.B > 10 {
		t.Errorf("blend at alpha 0.5: %v, Turbo(1) %v", c, want)
	}
}

func TestROCCurve(t *testing.T) {
	fpr, tpr := rocCurve([]float32{0.9, 0.8, 0.8, 0.1}, []bool{true, false, true, false})
	wantF := []float64{0, 0, 0.5, 1}
	wantT := []float64{0, 0.5, 1, 1}
	for i := range wantF {
		if fpr[i] != wantF[i] || tpr[i] != wantT[i] {
			t.Fatalf("ROC %v %v, want %v %v", fpr, tpr, wantF, wantT)
		}
	}
}

// OpenShared uses a loaded backbone only for checkpoints trained on it.
func TestOpenSharedChecksTheBackbone(t *testing.T) {
	root := t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 1, Valid: 2, Test: 2, Size: 32}); err != nil {
		t.Fatal(err)
	}
	tk := reftest.Tokenizer(t)
	c := train.Config{Data: root, Dataset: "Brain", Shots: 2, Seed: 1, Epochs: 1, Preset: "tiny", BackboneSeed: 1,
		Model: model.Options{ImageSize: 56}, Out: filepath.Join(t.TempDir(), "ck.safetensors")}
	err := torch.Do(func() error {
		if _, err := train.Run(context.Background(), c, tk, train.Silent{}); err != nil {
			return err
		}
		for seed, ok := range map[uint64]bool{1: true, 2: false} {
			b, info, err := checkpoint.OpenBackbone(checkpoint.Source{Preset: "tiny", Seed: seed}, model.Options{ImageSize: 56}.CLIPOptions(torch.CPU))
			if err != nil {
				return err
			}
			p, err := OpenShared(c.Out, &checkpoint.SharedBackbone{Model: b, Info: info}, tk, torch.CPU)
			if (err == nil) != ok {
				t.Errorf("backbone seed %d: error %v", seed, err)
			}
			if p != nil {
				p.Close()
			}
			b.Free()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
