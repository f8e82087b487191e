// Package infer scores scans with a trained MadCLIP checkpoint: image
// scores and pixel-level anomaly maps, batched, with decoding on worker
// goroutines while the compute thread runs the previous batch.
package infer

import (
	"fmt"
	"math"
	"slices"

	"madclip/checkpoint"
	"madclip/internal/shellquote"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
)

// Predictor holds a loaded checkpoint ready to score images. Its methods
// run on the compute thread (inside torch.Do).
type Predictor struct {
	Meta     checkpoint.Meta
	Size     int  // input resolution
	HasMasks bool // trained with segmentation: the score is the map's maximum
	Device   torch.Device
	// WeightsFile is the CLIP weights file the backbone was loaded from
	// ("" for a preset): the one the checkpoint records, or one with the
	// same digest found in its place.
	WeightsFile string

	path     string      // the checkpoint's, for messages
	backbone *clip.Model // nil when shared (not ours to free)
	model    *model.MadCLIP
	text     *torch.Tensor
}

// Open loads a checkpoint and the backbone it needs (weights may be empty
// for a preset backbone or to use the path recorded in the checkpoint).
func Open(path, weights string, tk *bpe.Tokenizer, dev torch.Device) (*Predictor, error) {
	var used string
	p, err := open(path, tk, dev, func(ck *checkpoint.Checkpoint) (*clip.Model, bool, error) {
		b, file, err := ck.OpenBackbone(weights, dev)
		used = file
		return b, true, err
	})
	if err == nil {
		p.WeightsFile = used
	}
	return p, err
}

// OpenShared loads a checkpoint over a backbone already loaded (which it
// does not free), after checking that the checkpoint was trained on it.
func OpenShared(path string, shared *checkpoint.SharedBackbone, tk *bpe.Tokenizer, dev torch.Device) (*Predictor, error) {
	p, err := open(path, tk, dev, func(ck *checkpoint.Checkpoint) (*clip.Model, bool, error) {
		if !ck.Meta.Backbone.Same(shared.Info) || shared.Model.Options != ck.Meta.Model.CLIPOptions(dev) {
			return nil, false, fmt.Errorf("%s was trained on another backbone than the one loaded", path)
		}
		return shared.Model, false, nil
	})
	if err == nil {
		p.WeightsFile = string(shared.Info.File)
	}
	return p, err
}

func open(path string, tk *bpe.Tokenizer, dev torch.Device, backboneFor func(*checkpoint.Checkpoint) (*clip.Model, bool, error)) (*Predictor, error) {
	ck, err := checkpoint.Load(path, dev)
	if err != nil {
		return nil, err
	}
	defer ck.Free()
	if ck.Meta.Partial() {
		return nil, fmt.Errorf("%s: training did not finish (interrupted at %s); finish it with madclip train --resume %s", path, ck.Meta.StoppedAt(), shellquote.Path(path))
	}
	backbone, owned, err := backboneFor(ck)
	if err != nil {
		return nil, err
	}
	m, err := ck.Model(backbone, tk)
	if err != nil {
		if owned {
			backbone.Free()
		}
		return nil, err
	}
	p := &Predictor{path: path, Meta: ck.Meta, Size: ck.Meta.Model.ImageSize, Device: dev, model: m, HasMasks: ck.Meta.Masks}
	if owned {
		p.backbone = backbone
	}
	err = torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			t, ok := ck.Tensors[checkpoint.TextFeaturesKey]
			if ok {
				// Stored at the end of training: no text tower to run.
				want := []int64{2, int64(backbone.Config.EmbedDim)}
				in, err := t.Info()
				if err != nil {
					return fmt.Errorf("%s: %s: %w", path, checkpoint.TextFeaturesKey, err)
				}
				if !slices.Equal(in.Shape, want) {
					return fmt.Errorf("%s: %s has shape %v, want %v", path, checkpoint.TextFeaturesKey, in.Shape, want)
				}
				t = t.Detach()
			} else {
				t = m.TextFeatures()
			}
			if err := t.Err(); err != nil {
				return err
			}
			p.text = t.Persist()
			return nil
		})
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	if owned {
		backbone.ReleaseText() // the class embeddings are all prediction needs of it
	}
	return p, nil
}

// Close releases the model and the backbone.
func (p *Predictor) Close() {
	if p.text != nil {
		p.text.Free()
	}
	if p.model != nil {
		p.model.Free()
	}
	if p.backbone != nil {
		p.backbone.Free()
	}
}

// Layers is the number of tapped layers: raw scores lie in [0, Layers].
func (p *Predictor) Layers() int { return len(p.model.Opts.Layers) }

// Result is one image's prediction.
type Result struct {
	// Score is the anomaly score in [0, 1]: the raw score (the anomaly map's
	// maximum for models trained with masks, else the detection score, both
	// sums over the tapped layers) divided by the number of layers.
	Score float64
	// DetScore is the detection head's score in [0, 1] (the sum over the
	// tapped layers of the mean patch probability of "abnormal", divided by
	// the number of layers), computed for every model as the authors' test
	// does; it is Score for models trained without masks.
	DetScore float64
	// Map is the pixel-level anomaly map [Size×Size], in [0, 1] like Score.
	Map []float32
}

func (r Result) finite() bool {
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
	if bad(r.Score) || bad(r.DetScore) {
		return false
	}
	for _, v := range r.Map {
		if bad(float64(v)) {
			return false
		}
	}
	return true
}

// NonFiniteError is a prediction that came out NaN or infinite: the model
// overflowed, which only damaged parameters (the checkpoint's or the
// weights') make it do. Nothing is labelled or drawn from it.
type NonFiniteError struct {
	Index      int    // the image's place in the batch
	Checkpoint string // the checkpoint's path
	Image      string // the image's path, once known
}

func (e *NonFiniteError) Error() string {
	what := "an image"
	if e.Image != "" {
		what = e.Image
	}
	return fmt.Sprintf("%s: the model's score is not a number (NaN or infinite): checkpoint %s or the CLIP weights it runs on hold damaged parameters", what, e.Checkpoint)
}

// Predict scores a batch of preprocessed images (each [3, Size, Size] in
// [0, 1]).
func (p *Predictor) Predict(pixels [][]float32) ([]Result, error) {
	n := len(pixels)
	if n == 0 {
		return nil, nil
	}
	flat := make([]float32, 0, n*3*p.Size*p.Size)
	for _, px := range pixels {
		flat = append(flat, px...)
	}
	out := make([]Result, n)
	err := torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			run := func() error {
				x := torch.FromSlice(flat, int64(n), 3, int64(p.Size), int64(p.Size)).ToDevice(p.Device)
				det, seg := p.model.Scores(p.model.Features(x), p.text)
				score, detScore, amap := p.model.ImageScores(det, seg, p.Size, p.HasMasks)
				maps, err := amap.Float32s()
				if err != nil {
					return err
				}
				dets, err := detScore.Float32s()
				if err != nil {
					return err
				}
				scores, err := score.Float32s()
				if err != nil {
					return err
				}
				hw := p.Size * p.Size
				for i := range out {
					out[i] = Result{Score: float64(scores[i]), DetScore: float64(dets[i]), Map: maps[i*hw : (i+1)*hw]}
					if !out[i].finite() {
						return &NonFiniteError{Index: i, Checkpoint: p.path}
					}
				}
				return nil
			}
			return model.WithPrecision(p.Device, run)
		})
	})
	return out, err
}

// Threshold is the label threshold the checkpoint chose in training, or
// 0.5 when it chose none, with where it comes from.
func (p *Predictor) Threshold() (float64, string) {
	if p.Meta.Threshold == 0 {
		return 0.5, p.Meta.ThresholdOrigin()
	}
	return p.Meta.Threshold, p.Meta.ThresholdOrigin()
}
