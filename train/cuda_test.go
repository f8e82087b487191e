package train

import (
	"math"
	"testing"

	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/model"
	"madclip/torch"
)

// One training step of the tiny MadCLIP on a GPU, under bf16 autocast as
// training runs there, against the same step on the CPU in fp32 (the same
// initial parameters, features and batch): the scores and the image score
// come out in float32, the losses agree to bf16's precision, and Adam moves
// nearly every parameter element as on the CPU (its first step is about
// lr·sign(g), so only gradients near zero may differ). Skipped without CUDA.
func TestStepOnCUDA(t *testing.T) {
	gpu := torchtest.CUDAOrSkip(t)
	const size, batch = 44, 4
	tk := reftest.Tokenizer(t)
	type result struct {
		loss   float64
		params map[string][]float64
	}
	step := func(dev torch.Device) (res result) {
		do(t, func(s *torch.Scope) error {
			bb, m, err := tinyMadCLIP(tk, model.Options{Object: "Brain", ImageSize: size}, dev)
			if err != nil {
				return err
			}
			defer bb.Free()
			defer m.Free()
			g, err := torch.NewGenerator(9)
			if err != nil {
				return err
			}
			defer g.Free()
			x := torch.Rand(g, torch.Float32, torch.CPU, batch, 3, size, size).ToDevice(dev)
			labels := torch.FromSlice([]float32{1, 0, 1, 0}).ToDevice(dev)
			masks := torch.Rand(g, torch.Float32, torch.CPU, batch, size, size).GtScalar(0.6).ToDType(torch.Float32).ToDevice(dev).Mul(labels.View(batch, 1, 1))
			taps := m.Features(x) // fp32, as the feature cache keeps them
			if dev.IsCUDA() {
				err := model.WithPrecision(dev, func() error {
					det, seg := m.Scores(taps, m.TextFeatures())
					score := m.ImageScore(det, seg, size, false)
					for what, x := range map[string]*torch.Tensor{"detection scores": det[0], "segmentation scores": seg[0], "image score": score} {
						if dt := x.DType(); dt != torch.Float32 {
							t.Errorf("%s under bf16 autocast are %v, want float32", what, dt)
						}
					}
					return score.Err()
				})
				if err != nil {
					return err
				}
			}
			opt, err := paperAdam(m)
			if err != nil {
				return err
			}
			defer opt.Free()
			if res.loss, err = Step(m, opt, taps, labels, masks, LossOptions{Size: size}, dev); err != nil {
				return err
			}
			res.params = map[string][]float64{}
			for k, v := range m.Params().Map() {
				res.params[k] = values(t, v.ToDevice(torch.CPU))
			}
			return nil
		})
		return res
	}
	cpu, cuda := step(torch.CPU), step(gpu)
	if math.Abs(cuda.loss-cpu.loss) > 0.02*math.Abs(cpu.loss) {
		t.Errorf("loss %.5f on CUDA (bf16), %.5f on the CPU", cuda.loss, cpu.loss)
	}
	same, all := 0, 0
	for k, want := range cpu.params {
		got := cuda.params[k]
		if len(got) != len(want) {
			t.Fatalf("%s: %d values on CUDA, %d on the CPU", k, len(got), len(want))
		}
		for i := range want {
			all++
			if d := math.Abs(got[i] - want[i]); d <= 1e-4 {
				same++
			} else if d > 2.5e-3 { // more than one Adam step of lr either way
				t.Errorf("%s[%d] = %g on CUDA, %g on the CPU", k, i, got[i], want[i])
				break
			}
		}
	}
	if float64(same) < 0.95*float64(all) {
		t.Errorf("after one step %d of %d parameter values agree within 1e-4 between CUDA and the CPU", same, all)
	}
	t.Logf("loss %.5f (CUDA, bf16) vs %.5f (CPU); %d of %d parameter values within 1e-4", cuda.loss, cpu.loss, same, all)
}
