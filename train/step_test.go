package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"madclip/internal/reftest"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
)

// Two training steps (Step) against an independent PyTorch computation
// (testdata/reference_step.py): the text tower run with gradients to the
// context vectors, the adapters on the taps, the three losses of every
// layer summed with weight 1, backward, and torch.optim.Adam with the
// paper's betas. The losses and every parameter after the steps agree, for
// the method and for the paper's ablations (c) shared adapters, (d) no
// subtraction, (e) the softmax loss and (f) one head, and for the prompts
// run with CLIP's causal mask and QuickGELU.
func TestStepAgainstPyTorch(t *testing.T) {
	py := reftest.Python(t, "torch", "numpy")
	for _, v := range []struct {
		name   string
		opts   model.Options
		loss   LossOptions
		params int
	}{
		{"MadCLIP", model.Options{}, LossOptions{}, 2*4*3 + 2},
		{"shared adapters and one head", model.Options{SharedAdapters: true, CommonHead: true}, LossOptions{}, 4*2 + 2},
		{"no subtraction", model.Options{NoSubtraction: true}, LossOptions{}, 2*4*3 + 2},
		{"softmax loss", model.Options{}, LossOptions{Softmax: true}, 2*4*3 + 2},
		{"causal prompts and QuickGELU", model.Options{CausalPrompts: true, QuickGELU: true}, LossOptions{}, 2*4*3 + 2},
	} {
		t.Run(v.name, func(t *testing.T) { stepAgainstPyTorch(t, py, v.opts, v.loss, v.params) })
	}
}

func stepAgainstPyTorch(t *testing.T, py string, o model.Options, lo LossOptions, nParams int) {
	const size, batch, steps = 44, 4, 2
	dir := t.TempDir()
	tk := reftest.Tokenizer(t)
	var gotLoss []float64
	got := map[string][]float64{}
	do(t, func(s *torch.Scope) error {
		o.Object, o.ImageSize = "Brain", size
		bb, m, err := tinyMadCLIP(tk, o, torch.CPU)
		if err != nil {
			return err
		}
		defer bb.Free()
		defer m.Free()
		dump := map[string]*torch.Tensor{}
		for k, v := range bb.Params().Map() {
			dump["clip."+k] = v
		}
		for k, v := range m.Params().Map() {
			dump["init."+k] = v.Detach().MulScalar(1) // a copy: the steps change v in place
		}
		var layout []int64
		for c := range 2 {
			for i := range 7 {
				for _, pos := range model.Positions() {
					layout = append(layout, m.Prompts.Layout(c, i, pos)...)
				}
			}
		}
		dump["layout"] = torch.FromSlice(layout, 42, 77)
		g, _ := torch.NewGenerator(9)
		defer g.Free()
		taps := m.Features(torch.Rand(g, torch.Float32, torch.CPU, batch, 3, size, size))
		for i, tp := range taps {
			dump[fmt.Sprintf("tap.%d", i)] = tp
		}
		labels := torch.FromSlice([]float32{1, 0, 1, 0})
		masks := torch.Rand(g, torch.Float32, torch.CPU, batch, size, size).GtScalar(0.6).ToDType(torch.Float32).Mul(labels.View(batch, 1, 1))
		dump["labels"], dump["masks"] = labels, masks
		if err := torch.SaveSafetensors(filepath.Join(dir, "step.safetensors"), dump, nil); err != nil {
			return err
		}
		opt, err := paperAdam(m)
		if err != nil {
			return err
		}
		defer opt.Free()
		for range steps {
			lo.Size = size
			l, err := Step(m, opt, taps, labels, masks, lo, torch.CPU)
			if err != nil {
				return err
			}
			gotLoss = append(gotLoss, l)
		}
		for k, v := range m.Params().Map() {
			got[k] = values(t, v)
		}
		return nil
	})
	cfgJSON, _ := json.Marshal(map[string]any{"vision_heads": clip.Tiny().VisionHeads, "text_heads": clip.Tiny().TextHeads, "layers": 4, "size": size,
		"shared": o.SharedAdapters, "common": o.CommonHead, "nosub": o.NoSubtraction, "softmax": lo.Softmax,
		"causal": o.CausalPrompts, "quick_gelu": o.QuickGELU})
	out, err := exec.Command(py, filepath.Join("testdata", "reference_step.py"), filepath.Join(dir, "step.safetensors"), fmt.Sprint(steps), string(cfgJSON)).Output()
	if err != nil {
		t.Fatalf("reference_step.py: %v", err)
	}
	var want struct {
		Loss  []float64            `json:"loss"`
		Final map[string][]float64 `json:"final"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("reference output: %v", err)
	}
	reftest.Near(t, "losses", gotLoss, want.Loss, 1e-5)
	if len(want.Final) != len(got) || len(got) != nParams {
		t.Fatalf("%d parameters here, %d in the reference; want %d", len(got), len(want.Final), nParams)
	}
	// Adam moves a value by at most about lr a step, whatever its
	// gradient: where a gradient is within rounding of zero after the
	// first step, m/√v is ±1 by the sign of that rounding, so a few values
	// in a thousand may go their own way; the rest agree to 2% of a step.
	for name, w := range want.Final {
		if len(got[name]) != len(w) {
			t.Fatalf("%s: %d values, reference %d", name, len(got[name]), len(w))
		}
		worst, off := 0.0, 0
		for i := range w {
			d := math.Abs(got[name][i] - w[i])
			worst = max(worst, d)
			if d > 2e-5 {
				off++
			}
		}
		if worst > 2*steps*1e-3 || off > len(w)/1000 {
			t.Errorf("%s: %d of %d values differ from PyTorch's by over 2e-5, the worst by %.2e", name, off, len(w), worst)
		}
	}
	if math.Abs(gotLoss[1]-gotLoss[0]) < 1e-6 {
		t.Error("the loss did not change between steps; the test cannot see Adam's step")
	}
}

// paperAdam makes m's parameters require gradients and returns Adam over
// them with the paper's settings (lr 1e-3, betas 0.5 and 0.999).
func paperAdam(m *model.MadCLIP) (*torch.Adam, error) {
	params := m.Params().Tensors()
	for _, p := range params {
		if err := p.SetRequiresGrad(true); err != nil {
			return nil, err
		}
	}
	return torch.NewAdam(params, torch.AdamConfig{LR: 1e-3, Beta1: 0.5, Beta2: 0.999, Eps: 1e-8})
}

// tinyMadCLIP is MadCLIP with options o over the tiny CLIP (backbone seed
// 1, MadCLIP seed 2) on dev: the same parameters on every device, drawn on
// the CPU and moved.
func tinyMadCLIP(tk *bpe.Tokenizer, o model.Options, dev torch.Device) (*clip.Model, *model.MadCLIP, error) {
	bb, err := clip.New(clip.Tiny(), o.CLIPOptions(dev), 1)
	if err != nil {
		return nil, nil, err
	}
	m, err := model.New(bb, tk, o, 2)
	if err != nil {
		bb.Free()
		return nil, nil, err
	}
	return bb, m, nil
}
