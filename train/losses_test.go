package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/torch"
)

func do(t *testing.T, fn func(s *torch.Scope) error) { torchtest.Do(t, fn) }

func values(t *testing.T, x *torch.Tensor) []float64 { return torchtest.Values(t, x) }

// The losses, value and gradient with respect to the scores, against an
// independent PyTorch computation (float64).
func TestLossesAgainstPyTorch(t *testing.T) {
	py := reftest.Python(t, "torch", "numpy")
	dir := t.TempDir()
	const layers, grid, size = 2, 3, 12
	do(t, func(s *torch.Scope) error {
		g, _ := torch.NewGenerator(5)
		defer g.Free()
		var det, seg []*torch.Tensor
		tensors := map[string]*torch.Tensor{}
		for i := range layers {
			d := torch.Randn(g, torch.Float64, torch.CPU, 4, grid*grid, 2).MulScalar(0.8)
			sg := torch.Randn(g, torch.Float64, torch.CPU, 4, grid*grid, 2)
			det, seg = append(det, d), append(seg, sg)
			tensors[fmt.Sprintf("det.%d", i)] = d
			tensors[fmt.Sprintf("seg.%d", i)] = sg
		}
		labels := torch.FromSlice([]float64{0, 1, 0, 1})
		masks := torch.Rand(g, torch.Float64, torch.CPU, 4, size, size).GtScalar(0.7).ToDType(torch.Float64)
		// Normal images have empty masks.
		masks = masks.Mul(labels.View(4, 1, 1))
		tensors["labels"], tensors["masks"] = labels, masks
		path := filepath.Join(dir, "t.safetensors")
		if err := torch.SaveSafetensors(path, tensors, nil); err != nil {
			return err
		}
		cfg, _ := json.Marshal(map[string]any{"layers": layers, "size": size})
		cmd := exec.Command(py, filepath.Join("testdata", "reference_losses.py"), path, string(cfg))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("reference_losses.py: %v", err)
		}
		var want map[string]struct {
			Loss  float64
			Grads [][]float64
		}
		if err := json.Unmarshal(out, &want); err != nil {
			return err
		}
		for name, c := range map[string]struct {
			masks *torch.Tensor
			o     LossOptions
		}{
			"full":    {masks, LossOptions{Size: size}},
			"nomask":  {nil, LossOptions{Size: size}},
			"softmax": {masks, LossOptions{Size: size, Softmax: true}},
		} {
			var dl, sl []*torch.Tensor
			for i := range layers {
				d, sg := det[i].Detach(), seg[i].Detach()
				d.SetRequiresGrad(true)
				sg.SetRequiresGrad(true)
				dl, sl = append(dl, d), append(sl, sg)
			}
			loss := Loss(dl, sl, labels, c.masks, grid, c.o)
			reftest.Near(t, name+" loss", values(t, loss), []float64{want[name].Loss}, 1e-10)
			if err := loss.Backward(); err != nil {
				return err
			}
			for i, x := range append(dl, sl...) {
				wg := want[name].Grads[i]
				gr := x.Grad()
				if wg == nil {
					if gr != nil {
						t.Errorf("%s: input %d has a gradient, the reference none", name, i)
					}
					continue
				}
				reftest.Near(t, fmt.Sprintf("%s grad %d", name, i), values(t, gr), wg, 1e-9)
			}
		}
		return nil
	})
}

// Hand-checked values of each loss on tiny inputs.
func TestLossValues(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		// One patch, S_n = 0 and S_ab = 0: both terms are log 2.
		sc := torch.Zeros(torch.Float64, torch.CPU, 1, 1, 2)
		reftest.Near(t, "det at zero", values(t, DetectionLoss(sc, torch.FromSlice([]float64{1}))), []float64{2 * 0.6931471805599453}, 1e-12)
		// The softmax ablation at zero: both probabilities 0.5, and BCE with
		// logits of 0.5: 2·(log(1+e^0.5) − 0.5y).
		sp := math.Log1p(math.Exp(0.5))
		reftest.Near(t, "softmax at zero", values(t, SoftmaxDetectionLoss(sc, torch.FromSlice([]float64{1}))), []float64{2 * (sp - 0.5)}, 1e-12)
		reftest.Near(t, "softmax at zero, normal", values(t, SoftmaxDetectionLoss(sc, torch.FromSlice([]float64{0}))), []float64{2 * sp}, 1e-12)
		// A perfect abnormal prediction: tiny loss.
		good := torch.FromSlice([]float64{-20, 20}, 1, 1, 2)
		if v := values(t, DetectionLoss(good, torch.FromSlice([]float64{1})))[0]; v > 1e-8 {
			t.Errorf("confident correct loss %v", v)
		}
		// Dice of a perfect map is 0; of an empty prediction on an empty mask is 0 too.
		m := torch.FromSlice([]float64{0, 1, 1, 0}, 1, 2, 2)
		reftest.Near(t, "dice perfect", values(t, DiceLoss(m, m)), []float64{0}, 1e-12)
		zero := torch.Zeros(torch.Float64, torch.CPU, 1, 2, 2)
		reftest.Near(t, "dice empty", values(t, DiceLoss(zero, zero)), []float64{0}, 1e-12)
		// Focal with p = 0.5 everywhere: pt ≈ 0.5, loss ≈ 0.25·log 2.
		p := torch.Full(0.5, torch.Float64, torch.CPU, 1, 2, 2, 2)
		reftest.Near(t, "focal", values(t, FocalLoss(p, m)), []float64{0.25 * 0.6931}, 1e-3)
		return nil
	})
}
