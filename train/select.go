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
// images best, never looking at the test split: by image AUROC, plus the
// pixel AUROC of their masks when the model trains with masks (the
// authors' criterion, which their code applies to the test split).
type selector struct {
	cache  *featureCache // features of the held-out images
	labels []bool
	masks  bool
	size   int
	// pixels are the held-out masks' pixels (size×size per image, normal
	// images all false), nil when selection is by image AUROC alone.
	pixels     []bool
	bestParams []*torch.Tensor // copies of the best parameters
	bestAUC    float64         // the best epoch's image AUROC
	bestPixel  float64         // and its pixel AUROC (0 without pixels)
	bestEpoch  int
}

// validScore is how an epoch scores on the held-out images.
type validScore struct {
	Image, Pixel float64 // AUROCs; Pixel is 0 when selection has no pixels
	ByPixels     bool    // selection ranks pixels too
}

// String reads "image AUROC 91.20%", with ", pixel AUROC 97.03%" when
// selection has pixels.
func (v validScore) String() string {
	s := fmt.Sprintf("image AUROC %.2f%%", 100*v.Image)
	if v.ByPixels {
		s += fmt.Sprintf(", pixel AUROC %.2f%%", 100*v.Pixel)
	}
	return s
}

// criterion is the number selection maximises.
func (v validScore) criterion() float64 { return v.Image + v.Pixel }

// newSelector caches the features of the held-out samples for a model
// trained with masks or not; byPixels reads their masks too, for selection
// by image + pixel AUROC.
func newSelector(ctx context.Context, m *model.MadCLIP, samples []dataset.Sample, size int, masks, byPixels bool, limits imaging.Limits, dev torch.Device) (*selector, error) {
	imgs, err := loadAll(samples, size, dataset.DecodeOptions{Limits: limits, Masks: byPixels})
	if err != nil {
		return nil, err
	}
	s := &selector{size: size, masks: masks, bestAUC: -1}
	for _, smp := range samples {
		s.labels = append(s.labels, smp.Abnormal)
	}
	if byPixels {
		s.pixels = maskPixels(imgs)
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

// maskPixels are the masks' pixels, image after image, or nil when no
// pixel is marked (nothing for a pixel AUROC to rank).
func maskPixels(imgs []dataset.Image) []bool {
	var out []bool
	marked := false
	for _, im := range imgs {
		for _, v := range im.Mask {
			out = append(out, v > 0.5)
			marked = marked || v > 0.5
		}
	}
	if !marked {
		return nil
	}
	return out
}

// score scores the held-out images with the current parameters, on
// predict's [0, 1] scale, with their anomaly maps (flattened, image after
// image) when withMaps asks for them and selection has pixels.
func (s *selector) score(m *model.MadCLIP, withMaps bool) (scores, maps []float32, err error) {
	err = torch.NoGrad(func() error {
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
						if !withMaps || s.pixels == nil {
							v, err := m.ImageScore(det, seg, s.size, s.masks).Float32s()
							scores = append(scores, v...)
							return err
						}
						score, _, amap := m.ImageScores(det, seg, s.size, s.masks)
						v, err := score.Float32s()
						if err != nil {
							return err
						}
						scores = append(scores, v...)
						px, err := amap.Float32s()
						maps = append(maps, px...)
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
	return scores, maps, err
}

// calibrate chooses the label thresholds on the held-out images for the
// current parameters: F1-max, and the Youden point, each at the midpoint
// of the gap between held-out scores where it holds (not on the lowest
// abnormal score, which would miss an unseen anomaly scoring a hair lower).
func (s *selector) calibrate(m *model.MadCLIP) (*checkpoint.Calibration, float64, float64, error) {
	scores, _, err := s.score(m, false)
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
func (s *selector) update(m *model.MadCLIP, epoch int) (validScore, error) {
	v := validScore{ByPixels: s.pixels != nil}
	scores, maps, err := s.score(m, true)
	if err != nil {
		return v, err
	}
	if v.Image, err = metrics.AUROC(scores, s.labels); err != nil {
		return v, err
	}
	if s.pixels != nil {
		if v.Pixel, err = metrics.AUROC(maps, s.pixels); err != nil {
			return v, err
		}
	}
	if s.bestAUC < 0 || v.criterion() > s.best().criterion() {
		s.bestAUC, s.bestPixel, s.bestEpoch = v.Image, v.Pixel, epoch
		for _, t := range s.bestParams {
			t.Free()
		}
		s.bestParams = nil
		err := torch.NoGrad(func() error {
			for _, p := range m.Params().Tensors() {
				c := p.Detach().Clone()
				if err := c.Err(); err != nil {
					return err
				}
				s.bestParams = append(s.bestParams, c.Persist())
			}
			return nil
		})
		if err != nil {
			return v, err
		}
	}
	return v, nil
}

// best is how the best epoch so far scored.
func (s *selector) best() validScore {
	return validScore{Image: s.bestAUC, Pixel: s.bestPixel, ByPixels: s.pixels != nil}
}

// record writes the best epoch so far, and how it scored, into a
// checkpoint's description.
func (s *selector) record(m *checkpoint.Meta) {
	image, pixel := s.bestAUC, s.bestPixel
	m.SelectedEpoch, m.ValidAUROC, m.ValidPixelAUROC = s.bestEpoch+1, &image, nil
	if s.pixels != nil {
		m.ValidPixelAUROC = &pixel
	}
}

// restoreBest copies the best epoch's parameters into the model.
func (s *selector) restoreBest(m *model.MadCLIP) error {
	for i, p := range m.Params().Tensors() {
		if err := p.CopyFrom(s.bestParams[i]); err != nil {
			return err
		}
	}
	return nil
}

// state is the best epoch's parameters so far by name, for a partial
// checkpoint (nil before the first epoch ends).
func (s *selector) state(m *model.MadCLIP) map[string]*torch.Tensor {
	if s.bestParams == nil {
		return nil
	}
	out := map[string]*torch.Tensor{}
	for i, name := range m.Params().Names() {
		out[name] = s.bestParams[i]
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
	s.bestParams, s.bestAUC, s.bestPixel, s.bestEpoch = best, 0, 0, ck.Meta.SelectedEpoch-1
	if v := ck.Meta.ValidAUROC; v != nil {
		s.bestAUC = *v
	}
	if v := ck.Meta.ValidPixelAUROC; v != nil {
		s.bestPixel = *v
	}
	return nil
}

func (s *selector) free() {
	if s == nil {
		return
	}
	s.cache.free()
	for _, t := range s.bestParams {
		t.Free()
	}
}
