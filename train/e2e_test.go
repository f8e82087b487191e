package train

import (
	"context"
	"path/filepath"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/internal/reftest"
	"madclip/metrics"
	"madclip/model"
	"madclip/model/clip/bpe"
	"madclip/torch"
)

func tokenizer(t testing.TB) *bpe.Tokenizer { return reftest.Tokenizer(t) }

// quietReporter keeps each epoch's mean loss and each step's loss.
type quietReporter struct {
	losses, steps []float64
	stages        []string
}

func (r *quietReporter) Stage(s string)                { r.stages = append(r.stages, s) }
func (*quietReporter) Warn(string)                     {}
func (*quietReporter) Start(int, int, int)             {}
func (r *quietReporter) Step(_, _ int, loss float64)   { r.steps = append(r.steps, loss) }
func (r *quietReporter) EpochDone(_ int, mean float64) { r.losses = append(r.losses, mean) }

func auroc(t *testing.T, scores []float32, labels []bool) float64 {
	t.Helper()
	v, err := metrics.AUROC(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// evaluate scores the test split with a checkpoint: image AUROC (the map's
// maximum) and pixel AUROC.
func evaluate(t *testing.T, root, ckpt string, size int) (imageAUC, pixelAUC float64) {
	t.Helper()
	test, err := dataset.ReadSplit(root, "Brain", "test")
	if err != nil {
		t.Fatal(err)
	}
	var scores, pix []float32
	var labels, pixLabels []bool
	err = torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			ck, err := checkpoint.Load(ckpt, torch.CPU)
			if err != nil {
				return err
			}
			defer ck.Free()
			backbone, _, err := ck.OpenBackbone("", torch.CPU)
			if err != nil {
				return err
			}
			defer backbone.Free()
			m, err := ck.Model(backbone, tokenizer(t))
			if err != nil {
				return err
			}
			defer m.Free()
			text := m.TextFeatures()
			for _, smp := range test.Samples {
				im, err := dataset.Load(smp, size, true)
				if err != nil {
					return err
				}
				x := torch.FromSlice(im.Pixels, 1, 3, int64(size), int64(size))
				_, seg := m.Scores(m.Features(x), text)
				amap, err := m.AnomalyMap(seg, size).Float32s()
				if err != nil {
					return err
				}
				mx := amap[0]
				for i, v := range amap {
					mx = max(mx, v)
					pix = append(pix, v)
					pixLabels = append(pixLabels, im.Mask[i] > 0.5)
				}
				scores = append(scores, mx)
				labels = append(labels, smp.Abnormal)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return auroc(t, scores, labels), auroc(t, pix, pixLabels)
}

// End to end on the CPU: synthetic data, the tiny preset, a few epochs, and
// the trained model separates the synthetic test images and their pixels.
func TestTrainTinyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	root := t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 1, Valid: 8, Test: 10}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tiny.safetensors")
	cfg := Config{Data: root, Dataset: "Brain", Shots: 8, Seed: 1, Epochs: 4, Preset: "tiny", BackboneSeed: 1,
		Model: model.Options{ImageSize: 112}, Out: out}
	rep := &quietReporter{}
	var res *Result
	err := torch.Do(func() error {
		var err error
		res, err = Run(context.Background(), cfg, tokenizer(t), rep)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != 16*16 || len(rep.losses) != 4 || !(rep.losses[3] < rep.losses[0]) {
		t.Errorf("images %d, losses %v", res.Images, rep.losses)
	}
	img, pix := evaluate(t, root, out, 112)
	t.Logf("image AUROC %.3f, pixel AUROC %.3f, %v per step", img, pix, res.StepTime)
	if img < 0.9 || pix < 0.9 {
		t.Errorf("image AUROC %.3f, pixel AUROC %.3f; want both at least 0.9", img, pix)
	}
}
