package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"madclip/dataset"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/weights"
)

// Config is one training run.
type Config struct {
	Data    string // benchmark root
	Dataset string // e.g. "Brain", or the name of one's own {name}_AD folder

	// ShotsFile is a few-shot list (a path, or an authors' list by
	// dataset.AuthorsShotsName); without one, the authors' k-shot list of
	// a benchmark dataset, or a seeded draw of Shots per class.
	ShotsFile  string
	ShotsIndex int
	Shots      int
	DrawShots  bool // draw seeded shots even where the authors have a list
	Seed       uint64

	Epochs       int
	Batch        int
	LR           float64
	Beta1, Beta2 float64
	SoftmaxLoss  bool // the CLIP-style detection loss (ablation)

	Model model.Options // Object, layers, image size, reference behaviours, ablations

	Weights string // CLIP weights; empty with Preset
	// Shared, when set, is a backbone already opened with OpenBackbone for
	// this configuration; the run uses it instead of loading its own (the
	// benchmark trains many models on one backbone).
	Shared        *SharedBackbone
	Preset        string // a random backbone preset ("tiny"), recreated from BackboneSeed
	BackboneSeed  uint64
	Device        torch.Device
	NoCache       bool   // recompute the backbone every step (slow; for checks)
	CacheOnHost   bool   // keep the feature cache in host memory from the start
	SelectOnValid bool   // keep the epoch with the best image AUROC on the valid images that are not shots
	Out           string // checkpoint path
	Resume        string // a partial checkpoint to continue from
}

// Defaults fills the paper's settings where c leaves zeros.
func (c *Config) Defaults() {
	if c.Epochs == 0 {
		c.Epochs = 60
	}
	if c.Batch == 0 {
		c.Batch = 16
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.Beta1 == 0 {
		c.Beta1 = 0.5
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.999
	}
	if c.Model.ImageSize == 0 {
		c.Model.ImageSize = 240
	}
	if c.Model.Object == "" {
		c.Model.Object = model.ObjectWords[c.Dataset]
	}
	if c.Shots == 0 && c.ShotsFile == "" {
		c.Shots = 16
	}
}

// Reporter hears about progress. Calls come from the compute thread.
type Reporter interface {
	Stage(msg string)
	Start(epochs, stepsPerEpoch int)
	Step(epoch, step int, loss float64)
	EpochDone(epoch int, meanLoss float64)
}

// Silent is a Reporter that reports nothing.
type Silent struct{}

func (Silent) Stage(string)           {}
func (Silent) Start(int, int)         {}
func (Silent) Step(int, int, float64) {}
func (Silent) EpochDone(int, float64) {}

// ErrInterrupted is returned when the context was cancelled; a partial
// checkpoint was saved for --resume.
var ErrInterrupted = errors.New("training interrupted")

// Result describes a finished run.
type Result struct {
	Meta        Meta
	Images      int // augmented training images
	StepTime    time.Duration
	CacheTime   time.Duration
	TotalTime   time.Duration
	FinalLoss   float64
	LossHistory []float64 // mean loss per epoch
	// TextCosine is cos(t_n, t_ab) of the trained prompts: how far apart
	// training pushed the normal and abnormal text embeddings (the
	// authors' code logs it as sim_texts).
	TextCosine float64
}

// Run trains MadCLIP and writes the checkpoint. It must run on the compute
// thread (inside torch.Do).
func Run(ctx context.Context, c Config, tk *bpe.Tokenizer, rep Reporter) (*Result, error) {
	start := time.Now()
	c.Defaults()
	if c.Model.Object == "" {
		return nil, fmt.Errorf("no object word for dataset %q: give one (--object)", c.Dataset)
	}
	res := &Result{}
	var resume *Checkpoint
	if c.Resume != "" {
		var err error
		if resume, err = LoadCheckpoint(c.Resume, c.Device); err != nil {
			return nil, err
		}
		defer resume.Free()
		if !resume.Meta.Partial() {
			return nil, fmt.Errorf("%s: training already finished; nothing to resume", c.Resume)
		}
		// The run continues as it was started, whatever flags come with --resume.
		rm := resume.Meta
		c.Dataset, c.Seed, c.Model = rm.Dataset, rm.Seed, rm.Model
		c.Shots, c.ShotsFile, c.ShotsIndex = rm.Shots, rm.ShotsFile, rm.ShotsIndex
	}

	rep.Stage("reading the few shots")
	valid, err := dataset.ReadSplit(c.Data, c.Dataset, "valid")
	if err != nil {
		return nil, err
	}
	if c.ShotsFile == "" && !c.DrawShots && dataset.HasAuthorsShots(c.Dataset, c.Shots) {
		c.ShotsFile, c.ShotsIndex = dataset.AuthorsShotsName(c.Dataset, c.Shots), 0
	}
	var shots dataset.Shots
	if c.ShotsFile != "" {
		shots, err = dataset.OpenShots(c.ShotsFile, c.ShotsIndex)
	} else {
		shots, err = dataset.DrawShots(valid.Samples, c.Shots, c.Seed)
	}
	if err != nil {
		return nil, err
	}
	samples, heldOut, err := shots.Select(valid.Samples)
	if err != nil {
		if strings.HasPrefix(c.ShotsFile, "authors:") {
			return nil, fmt.Errorf("%w; the authors' list (%s) names images of their release; draw the shots from your data with --draw-shots", err, c.ShotsFile)
		}
		return nil, err
	}
	rep.Stage(describeShots(c, len(shots.Normal)))
	if c.SelectOnValid {
		if n, a := dataset.Counts(heldOut); n == 0 || a == 0 {
			return nil, fmt.Errorf("--select-on-valid needs valid images of both classes besides the shots (have %d normal, %d abnormal)", n, a)
		}
	}
	k := len(shots.Normal)
	imgs, err := loadAll(samples, c.Model.ImageSize, valid.HasMasks)
	if err != nil {
		return nil, err
	}

	rep.Stage("loading CLIP")
	var backbone *clip.Model
	var bb Backbone
	if c.Shared != nil {
		backbone, bb = c.Shared.Model, c.Shared.Info
		if backbone.Options != c.Model.CLIPOptions(c.Device) {
			return nil, fmt.Errorf("the shared backbone runs with other options than this run needs")
		}
	} else {
		if backbone, bb, err = OpenBackbone(c); err != nil {
			return nil, err
		}
		defer backbone.Free()
	}

	var m *model.MadCLIP
	if resume != nil {
		m, err = resume.Model(backbone, tk)
	} else {
		m, err = model.New(backbone, tk, c.Model, c.Seed)
	}
	if err != nil {
		return nil, err
	}
	defer m.Free()
	params := m.Params().Tensors()
	for _, p := range params {
		if err := p.SetRequiresGrad(true); err != nil {
			return nil, err
		}
	}
	opt, err := torch.NewAdam(params, torch.AdamConfig{LR: c.LR, Beta1: c.Beta1, Beta2: c.Beta2, Eps: 1e-8})
	if err != nil {
		return nil, err
	}
	defer opt.Free()
	meta := Meta{Version: Version, Model: m.Opts, Backbone: bb, Dataset: c.Dataset, Masks: valid.HasMasks, Shots: k, ShotsFile: c.ShotsFile,
		ShotsIndex: c.ShotsIndex, Seed: c.Seed, Epochs: c.Epochs}
	firstEpoch, firstStep := 0, 0
	if resume != nil {
		if err := restoreAdam(opt, m, resume); err != nil {
			return nil, err
		}
		firstEpoch, firstStep = resume.Meta.Epoch, resume.Meta.Step
		meta = resume.Meta
		meta.Epochs = c.Epochs
	}

	// The static augmented set, its labels, and (unless disabled) the
	// backbone's tapped features of every augmented image.
	data := torch.NewScope()
	defer data.Close()
	rep.Stage("augmenting")
	g, err := torch.NewGenerator(c.Seed)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	size := int64(c.Model.ImageSize)
	var augImages, augMasks, labels *torch.Tensor
	var N int64
	err = torch.Scoped(func(s *torch.Scope) error { // frees the augmentation's temporaries
		augImages, augMasks, labels = augmentShots(imgs[k:], imgs[:k], size, valid.HasMasks, c.Device, g)
		N = labels.Size(0)
		s.Keep(augImages, augMasks, labels)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := data.Err(); err != nil {
		return nil, err
	}
	res.Images = int(N)

	var cache *featureCache
	if !c.NoCache {
		rep.Stage(fmt.Sprintf("caching backbone features of %d augmented images", N))
		t0 := time.Now()
		store := c.Device
		if c.CacheOnHost {
			store = torch.CPU
		}
		if cache, err = newFeatureCache(m, augImages, c.Device, store, rep.Stage); err != nil {
			return nil, err
		}
		if err := torch.Synchronize(c.Device); err != nil {
			return nil, err
		}
		res.CacheTime = time.Since(t0)
	}

	var sel *selector
	if c.SelectOnValid {
		rep.Stage(fmt.Sprintf("caching backbone features of %d held-out valid images", len(heldOut)))
		if sel, err = newSelector(m, heldOut, c.Model.ImageSize, valid.HasMasks, c.Device); err != nil {
			return nil, err
		}
		defer sel.free()
	}

	if cache != nil && c.Shared == nil {
		// Every image feature the run needs is cached: only the text tower
		// runs from here on.
		backbone.ReleaseVision()
	}
	batch := int64(c.Batch)
	steps := int((N + batch - 1) / batch)
	rep.Start(c.Epochs, steps)
	var stepTotal time.Duration
	var stepCount int
	for epoch := firstEpoch; epoch < c.Epochs; epoch++ {
		perm := rand.New(rand.NewPCG(c.Seed, uint64(epoch)+1)).Perm(int(N))
		var lossSum float64
		var lossN int
		for step := 0; step < steps; step++ {
			if epoch == firstEpoch && step < firstStep {
				continue
			}
			if ctx.Err() != nil {
				meta.Epoch, meta.Step = epoch, step
				if err := SaveCheckpoint(c.Out, m, opt, meta); err != nil {
					return nil, fmt.Errorf("interrupted, and saving the checkpoint failed: %w", err)
				}
				return nil, fmt.Errorf("%w at epoch %d step %d; saved %s (continue with --resume %s)", ErrInterrupted, epoch+1, step, c.Out, c.Out)
			}
			lo := int64(step) * batch
			hi := min(lo+batch, N)
			idx := make([]int64, hi-lo)
			for i := range idx {
				idx[i] = int64(perm[lo+int64(i)])
			}
			t0 := time.Now()
			loss, err := trainStep(m, opt, c, cache, augImages, augMasks, labels, idx)
			if err != nil {
				return nil, err
			}
			stepTotal += time.Since(t0)
			stepCount++
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				// The step was not applied: the parameters are the last good ones.
				meta.Epoch, meta.Step = epoch, step
				saved := "saving them failed"
				if err := SaveCheckpoint(c.Out, m, opt, meta); err == nil {
					saved = "the last good parameters are in " + c.Out
				}
				return nil, fmt.Errorf("the loss became %v at epoch %d step %d; training stopped (%s); try a lower --lr", loss, epoch+1, step+1, saved)
			}
			lossSum += loss
			lossN++
			rep.Step(epoch, step, loss)
		}
		mean := lossSum / float64(max(lossN, 1))
		res.LossHistory = append(res.LossHistory, mean)
		res.FinalLoss = mean
		rep.EpochDone(epoch, mean)
		if sel != nil {
			auc, err := sel.update(m, epoch)
			if err != nil {
				return nil, err
			}
			rep.Stage(fmt.Sprintf("epoch %d: valid image AUROC %.4f (best %.4f at epoch %d)", epoch+1, auc, sel.bestAUC, sel.bestEpoch+1))
		}
	}
	if sel != nil {
		if err := sel.restoreBest(m); err != nil {
			return nil, err
		}
		meta.SelectedEpoch, meta.ValidAUROC, meta.Threshold = sel.bestEpoch+1, sel.bestAUC, sel.threshold
	}
	if res.TextCosine, err = textCosine(m); err != nil {
		return nil, err
	}
	meta.Epoch, meta.Step = c.Epochs, 0
	rep.Stage("saving " + c.Out)
	if err := SaveCheckpoint(c.Out, m, nil, meta); err != nil {
		return nil, err
	}
	if stepCount > 0 {
		res.StepTime = stepTotal / time.Duration(stepCount)
	}
	res.Meta = meta
	res.TotalTime = time.Since(start)
	return res, nil
}

// trainStep runs one optimisation step on the batch idx and returns the loss.
func trainStep(m *model.MadCLIP, opt *torch.Adam, c Config, cache *featureCache, images, masks, labels *torch.Tensor, idx []int64) (float64, error) {
	var loss float64
	err := torch.Scoped(func(s *torch.Scope) error {
		ix := torch.FromSlice(idx).ToDevice(c.Device)
		var taps []*torch.Tensor
		if cache != nil {
			taps = cache.gather(idx, c.Device)
		} else {
			taps = m.Features(images.IndexSelect(0, ix))
		}
		var mb *torch.Tensor
		if masks != nil {
			mb = masks.IndexSelect(0, ix)
		}
		var err error
		loss, err = Step(m, opt, taps, labels.IndexSelect(0, ix), mb, LossOptions{Softmax: c.SoftmaxLoss, Size: c.Model.ImageSize}, c.Device)
		return err
	})
	return loss, err
}

// Step is one optimisation step on a batch of tapped features (one [B, 1+P,
// W] tensor per tapped layer), labels [B] and masks [B, S, S] (nil without
// masks): the text features, the scores, the loss, backward (under bf16
// autocast on CUDA) and Adam's step, which is skipped when the loss is not
// finite. It returns the loss.
func Step(m *model.MadCLIP, opt *torch.Adam, taps []*torch.Tensor, labels, masks *torch.Tensor, o LossOptions, dev torch.Device) (float64, error) {
	var loss float64
	err := torch.Scoped(func(s *torch.Scope) error {
		forward := func() error {
			det, seg := m.Scores(taps, m.TextFeatures())
			l := Loss(det, seg, labels, masks, m.Grid(), o)
			if err := opt.ZeroGrad(); err != nil {
				return err
			}
			if err := l.Backward(); err != nil {
				return err
			}
			var err error
			loss, err = l.Item()
			return err
		}
		var err error
		if dev.IsCUDA() {
			err = torch.Autocast(torch.DeviceCUDA, torch.BFloat16, forward)
		} else {
			err = forward()
		}
		if err != nil {
			return err
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil // reported by the caller; the parameters stay as they were
		}
		return opt.Step()
	})
	return loss, err
}

// SharedBackbone is a loaded backbone with its description, for Config.Shared.
type SharedBackbone struct {
	Model *clip.Model
	Info  Backbone
}

// OpenBackbone loads the CLIP a run trains on (c.Weights or c.Preset, with
// the options c.Model implies on c.Device) and describes it.
func OpenBackbone(c Config) (*clip.Model, Backbone, error) {
	opts := c.Model.CLIPOptions(c.Device)
	if c.Preset != "" {
		cfg, ok := clip.Presets[c.Preset]
		if !ok {
			return nil, Backbone{}, fmt.Errorf("unknown preset %q (known: %v)", c.Preset, clip.PresetNames())
		}
		m, err := clip.New(cfg, opts, c.BackboneSeed)
		return m, Backbone{Preset: c.Preset, Seed: c.BackboneSeed, Config: cfg}, err
	}
	if c.Weights == "" {
		return nil, Backbone{}, fmt.Errorf("no CLIP weights (--weights) and no --preset")
	}
	sum, err := weights.FileSHA256(c.Weights)
	if err != nil {
		return nil, Backbone{}, err
	}
	m, err := clip.Load(c.Weights, opts)
	if err != nil {
		return nil, Backbone{}, err
	}
	return m, Backbone{SHA256: sum, File: c.Weights, Config: m.Config}, nil
}

func restoreAdam(opt *torch.Adam, m *model.MadCLIP, ck *Checkpoint) error {
	for i, name := range m.Params().Names() {
		mom, ok1 := ck.Tensors["optim.m."+name]
		v, ok2 := ck.Tensors["optim.v."+name]
		if !ok1 || !ok2 {
			continue
		}
		if err := opt.SetState(ck.Meta.Steps, i, mom, v); err != nil {
			return fmt.Errorf("%s: optimizer state of %s: %w", ck.Path, name, err)
		}
	}
	return nil
}

// textCosine is cos(t_n, t_ab) of the model's text features (unit length).
func textCosine(m *model.MadCLIP) (float64, error) {
	var cos float64
	err := torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			t := m.TextFeatures().ToDType(torch.Float64)
			v, err := t.Select(0, 0).Mul(t.Select(0, 1)).Sum().Item()
			cos = v
			return err
		})
	})
	return cos, err
}

func describeShots(c Config, k int) string {
	if c.ShotsFile != "" {
		return fmt.Sprintf("shots: %d normal + %d abnormal from %s", k, k, c.ShotsFile)
	}
	return fmt.Sprintf("shots: %d normal + %d abnormal drawn with seed %d", k, k, c.Seed)
}

// augmentShots builds the static training set as the authors' code does:
// the abnormal shots' 16 variants (with their masks), then the normal
// shots' (masks all zero), each group augmented on its own (one jitter
// draw per group). It returns images [N, 3, S, S], masks [N, S, S] (nil
// without masks) and labels [N] (1 abnormal).
func augmentShots(abnormal, normal []dataset.Image, size int64, masks bool, dev torch.Device, g *torch.Generator) (images, maskT, labels *torch.Tensor) {
	pixels := func(imgs []dataset.Image) *torch.Tensor {
		return torch.FromSlice(concat(imgs, func(i dataset.Image) []float32 { return i.Pixels }), int64(len(imgs)), 3, size, size).ToDevice(dev)
	}
	var abMasks *torch.Tensor
	if masks {
		abMasks = torch.FromSlice(concat(abnormal, func(i dataset.Image) []float32 { return i.Mask }), int64(len(abnormal)), 1, size, size).ToDevice(dev)
	}
	abImages, abMasks := dataset.Augment(pixels(abnormal), abMasks, g)
	nImages, _ := dataset.Augment(pixels(normal), nil, g)
	nAb, nN := abImages.Size(0), nImages.Size(0)
	images = torch.Cat(0, abImages, nImages)
	if masks {
		maskT = torch.Cat(0, abMasks.Squeeze(1), torch.Zeros(torch.Float32, dev, nN, size, size))
	}
	labels = torch.Cat(0, torch.Ones(torch.Float32, dev, nAb), torch.Zeros(torch.Float32, dev, nN))
	return images, maskT, labels
}

// loadAll decodes and resizes the samples on worker goroutines.
func loadAll(samples []dataset.Sample, size int, masks bool) ([]dataset.Image, error) {
	out := make([]dataset.Image, len(samples))
	errs := make([]error, len(samples))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i, s := range samples {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = dataset.Load(s, size, masks)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func concat(imgs []dataset.Image, part func(dataset.Image) []float32) []float32 {
	var out []float32
	for _, im := range imgs {
		out = append(out, part(im)...)
	}
	return out
}
