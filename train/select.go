package train

import (
	"context"
	"fmt"
	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/metrics"
	"madclip/model"
	"madclip/torch"
)

// selector keeps the parameters of the epoch that scores the held-out valid
// images best (image AUROC), never looking at the test split.
type selector struct {
	cache     *featureCache // features of the held-out images
	labels    []bool
	masks     bool
	size      int
	best      []*torch.Tensor // copies of the best parameters
	bestAUC   float64
	bestEpoch int
}

func newSelector(ctx context.Context, m *model.MadCLIP, samples []dataset.Sample, size int, masks bool, limits imaging.Limits, dev torch.Device) (*selector, error) {
	imgs, err := loadAll(samples, size, dataset.DecodeOptions{Limits: limits})
	if err != nil {
		return nil, err
	}
	s := &selector{size: size, masks: masks, bestAUC: -1}
	for _, smp := range samples {
		s.labels = append(s.labels, smp.Abnormal)
	}
	err = torch.Scoped(func(sc *torch.Scope) error {
		x := torch.FromSlice(concat(imgs, func(i dataset.Image) []float32 { return i.Pixels }), int64(len(imgs)), 3, int64(size), int64(size)).ToDevice(dev)
		c, err := newFeatureCache(ctx, m, x, dev, dev, func(string) {})
		if err != nil {
			return err
		}
		s.cache = c
		return nil
	})
	if err != nil {
		s.free()
		return nil, err
	}
	return s, nil
}

// score scores the held-out images with the current parameters, on
// predict's [0, 1] scale.
func (s *selector) score(m *model.MadCLIP) ([]float32, error) {
	var scores []float32
	err := torch.NoGrad(func() error {
		return torch.Scoped(func(sc *torch.Scope) error {
			text := m.TextFeatures()
			n := int64(len(s.labels))
			dev := text.Device()
			const chunk = 32
			for lo := int64(0); lo < n; lo += chunk {
				err := torch.Scoped(func(sc *torch.Scope) error {
					idx := make([]int64, min(chunk, n-lo))
					for i := range idx {
						idx[i] = lo + int64(i)
					}
					taps := s.cache.gather(idx, dev)
					// At predict's precision (bf16 autocast on CUDA), so
					// that the threshold is chosen on the scores predict
					// will compare with it.
					return model.WithPrecision(dev, func() error {
						det, seg := m.Scores(taps, text)
						v, err := m.ImageScore(det, seg, s.size, s.masks).Float32s()
						scores = append(scores, v...)
						return err
					})
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	return scores, err
}

// calibrate chooses the label thresholds on the held-out images for the
// current parameters: F1-max, and the Youden point, each at the midpoint
// of the gap between held-out scores where it holds (not on the lowest
// abnormal score, which would miss an unseen anomaly scoring a hair lower).
func (s *selector) calibrate(m *model.MadCLIP) (*checkpoint.Calibration, float64, float64, error) {
	scores, err := s.score(m)
	if err != nil {
		return nil, 0, 0, err
	}
	auc, err := metrics.AUROC(scores, s.labels)
	if err != nil {
		return nil, 0, 0, err
	}
	_, f1th, _ := metrics.F1MaxMidpoint(scores, s.labels)
	_, jth, _ := metrics.YoudenMidpoint(scores, s.labels)
	c := &checkpoint.Calibration{AUROC: auc}
	for _, l := range s.labels {
		if l {
			c.Abnormal++
		} else {
			c.Normal++
		}
	}
	return c, float64(f1th), float64(jth), nil
}

// update scores the held-out images with the current parameters and keeps
// a copy of them when they are the best so far.
func (s *selector) update(m *model.MadCLIP, epoch int) (float64, error) {
	scores, err := s.score(m)
	if err != nil {
		return 0, err
	}
	auc, err := metrics.AUROC(scores, s.labels)
	if err != nil {
		return 0, err
	}
	if auc > s.bestAUC {
		s.bestAUC, s.bestEpoch = auc, epoch
		for _, t := range s.best {
			t.Free()
		}
		s.best = nil
		err := torch.NoGrad(func() error {
			for _, p := range m.Params().Tensors() {
				c := p.Detach().Clone()
				if err := c.Err(); err != nil {
					return err
				}
				s.best = append(s.best, c.Persist())
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return auc, nil
}

// restoreBest copies the best epoch's parameters into the model.
func (s *selector) restoreBest(m *model.MadCLIP) error {
	for i, p := range m.Params().Tensors() {
		if err := p.CopyFrom(s.best[i]); err != nil {
			return err
		}
	}
	return nil
}

// state is the best epoch's parameters so far by name, for a partial
// checkpoint (nil before the first epoch ends).
func (s *selector) state(m *model.MadCLIP) map[string]*torch.Tensor {
	if s.best == nil {
		return nil
	}
	out := map[string]*torch.Tensor{}
	for i, name := range m.Params().Names() {
		out[name] = s.best[i]
	}
	return out
}

// restore takes the best epoch so far from the partial checkpoint a run
// resumes, as state gave it.
func (s *selector) restore(m *model.MadCLIP, ck *checkpoint.Checkpoint) error {
	if ck.Meta.SelectedEpoch == 0 {
		return nil
	}
	var best []*torch.Tensor
	err := torch.NoGrad(func() error {
		for _, name := range m.Params().Names() {
			t, ok := ck.Tensors[checkpoint.SelectedPrefix+name]
			if !ok {
				return fmt.Errorf("%s: it names epoch %d as the best so far but lacks its %s", ck.Path, ck.Meta.SelectedEpoch, name)
			}
			c := t.Detach().Clone()
			if err := c.Err(); err != nil {
				return err
			}
			best = append(best, c.Persist())
		}
		return nil
	})
	if err != nil {
		for _, t := range best {
			t.Free()
		}
		return err
	}
	s.best, s.bestAUC, s.bestEpoch = best, ck.Meta.ValidAUROC, ck.Meta.SelectedEpoch-1
	return nil
}

func (s *selector) free() {
	if s == nil {
		return
	}
	s.cache.free()
	for _, t := range s.best {
		t.Free()
	}
}
