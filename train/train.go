package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/internal/jsonpath"
	"madclip/internal/samepath"
	"madclip/internal/shellquote"
	"madclip/metrics"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
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
	DrawShots  bool // draw seeded shots even where the authors have a list (always drawn where none does)
	Seed       uint64

	Epochs      int
	Batch       int
	LR          float64
	Betas       *[2]float64 // Adam's (β1, β2); nil for the paper's (0.5, 0.999), so that 0 can be asked for
	SoftmaxLoss bool        // the CLIP-style detection loss (ablation)

	Model model.Options // Object, layers, image size, reference behaviours, ablations

	Weights string // CLIP weights; empty with Preset
	// Shared, when set, is a backbone already opened for this configuration;
	// the run uses it instead of loading its own (the benchmark trains many
	// models on one backbone).
	Shared        *checkpoint.SharedBackbone
	Preset        string // a random backbone preset ("tiny"), recreated from BackboneSeed
	BackboneSeed  uint64
	Device        torch.Device
	NoCache       bool           // recompute the backbone every step (slow; for checks)
	CacheOnHost   bool           // keep the feature cache in host memory from the start
	SelectOnValid bool           // keep the epoch with the best image AUROC on the valid images that are not shots
	Out           string         // checkpoint path
	Limits        imaging.Limits // what images are decoded (the zero value is the default)
	Resume        string         // a partial checkpoint to continue from
}

// The paper's training settings, madclip's defaults (the command line's
// flags show these).
const (
	PaperEpochs = 60
	PaperBatch  = 16
	PaperLR     = 1e-3
	PaperBeta1  = 0.5
	PaperBeta2  = 0.999
	PaperShots  = 16 // per class (Table 1)
)

// Defaults fills the paper's settings where c leaves zeros.
func (c *Config) Defaults() {
	if c.Epochs == 0 {
		c.Epochs = PaperEpochs
	}
	if c.Batch == 0 {
		c.Batch = PaperBatch
	}
	if c.LR == 0 {
		c.LR = PaperLR
	}
	if c.Betas == nil {
		c.Betas = &[2]float64{PaperBeta1, PaperBeta2}
	}
	if c.Model.ImageSize == 0 {
		c.Model.ImageSize = model.PaperImageSize
	}
	if c.Model.Object == "" {
		c.Model.Object, _ = model.ObjectWord(c.Dataset)
	}
	if c.Shots == 0 && c.ShotsFile == "" {
		c.Shots = PaperShots
	}
}

// Reporter hears about progress. Calls come from the compute thread.
type Reporter interface {
	Stage(msg string)
	// Warn reports what may make the model mean less than the user
	// thinks (masks that mark nothing, an uncalibrated threshold): a
	// reporter shows it even when it shows no progress.
	Warn(msg string)
	// Start comes before the first step; done steps were taken before (by
	// the run a resume continues).
	Start(epochs, stepsPerEpoch, done int)
	Step(epoch, step int, loss float64)
	EpochDone(epoch int, meanLoss float64)
}

// Silent is a Reporter that reports nothing.
type Silent struct{}

func (Silent) Stage(string)           {}
func (Silent) Warn(string)            {}
func (Silent) Start(int, int, int)    {}
func (Silent) Step(int, int, float64) {}
func (Silent) EpochDone(int, float64) {}

// fewHeldOut is the fewest held-out images of a class that calibrate a
// threshold without a warning that it is rough.
const fewHeldOut = 5

// ErrInterrupted is returned when the context was cancelled; a partial
// checkpoint was saved for --resume.
var ErrInterrupted = errors.New("training interrupted")

// Result describes a finished run.
type Result struct {
	Meta        checkpoint.Meta
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

// Run trains MadCLIP and writes the checkpoint: it reads the shots, builds
// the model and its optimiser, builds the augmented set, caches the
// backbone's features, runs the epochs and saves. It must run on the compute
// thread (inside torch.Do).
func Run(ctx context.Context, c Config, tk *bpe.Tokenizer, rep Reporter) (*Result, error) {
	c.Defaults()
	if c.Model.Object == "" && c.Resume == "" {
		// A dataset without a built-in object word is most often a
		// mistyped name: say first that its folder is not there.
		if dir := dataset.Dir(c.Data, c.Dataset); c.Data != "" && dataset.CheckName(c.Dataset) == nil {
			if _, err := os.Stat(dir); err != nil {
				return nil, dataset.Missing(c.Data, c.Dataset)
			}
		}
		return nil, fmt.Errorf("no object word for dataset %q: give one (--object)", c.Dataset)
	}
	r := &trainingRun{c: &c, rep: rep, res: &Result{}, start: time.Now()}
	defer r.free()
	steps := []func() error{r.resumeFrom, r.readShots, func() error { return r.buildModel(tk) }, r.augment, func() error { return r.cacheFeatures(ctx) }}
	for _, step := range steps {
		if ctx.Err() != nil {
			return nil, r.stoppedPreparing(fmt.Errorf("%w while preparing, before the first step; nothing was saved", ErrInterrupted))
		}
		if err := step(); err != nil {
			return nil, r.stoppedPreparing(err)
		}
	}
	if err := r.epochs(ctx); err != nil {
		return nil, err
	}
	if err := r.finish(); err != nil {
		return nil, err
	}
	r.res.TotalTime = r.elapsed()
	return r.res, nil
}

// trainingRun is one training run's state, built step by step by Run.
type trainingRun struct {
	c      *Config
	rep    Reporter
	res    *Result
	resume *checkpoint.Checkpoint

	shots       dataset.Shots   // their names
	shotsDigest []string        // and their files' fingerprints (dataset.Digests)
	imgs        []dataset.Image // the shots, normal first
	k           int             // shots per class
	heldOut     []dataset.Sample
	hasMasks    bool

	backbone    *clip.Model
	ownBackbone bool
	selectedOn  *checkpoint.HeldOut // the held-out images selection ranks on
	resumeFlags string              // --data and --weights given with --resume, for the command to continue
	// weightsFound: a resumed run's weights were not given but found, at
	// their recorded path or by their digest.
	weightsFound bool
	m            *model.MadCLIP
	opt          *torch.Adam
	meta         checkpoint.Meta
	first        [2]int // the epoch and step to start at (after a resume)
	start        time.Time
	before       time.Duration // spent by earlier starts of a resumed run

	data                  *torch.Scope // holds the augmented set
	g                     *torch.Generator
	images, masks, labels *torch.Tensor
	n                     int64 // augmented images
	cache                 *featureCache
	sel                   *selector
}

func (r *trainingRun) free() {
	r.sel.free()
	r.cache.free()
	r.data.Close()
	r.g.Free()
	r.opt.Free()
	if r.m != nil {
		r.m.Free()
	}
	if r.ownBackbone {
		r.backbone.Free()
	}
	if r.resume != nil {
		r.resume.Free()
	}
}

// stoppedPreparing adds to an interruption before the first step of a
// resumed run that the checkpoint it resumes is as it was.
func (r *trainingRun) stoppedPreparing(err error) error {
	if r.c.Resume == "" || !errors.Is(err, ErrInterrupted) {
		return err
	}
	return fmt.Errorf("%w: %s is as it was (continue with madclip train --resume %s%s)", err, r.c.Resume, shellquote.Path(r.c.Resume), r.resumeFlags)
}

// resumeFrom loads a partial checkpoint: the run continues with the
// settings it was started with, whatever flags come with --resume.
func (r *trainingRun) resumeFrom() error {
	c := r.c
	if c.Resume == "" {
		return nil
	}
	// The flags this start needs again if it stops before it saves.
	if c.Data != "" {
		r.resumeFlags += " --data " + shellquote.Path(c.Data)
	}
	if c.Weights != "" {
		r.resumeFlags += " --weights " + shellquote.Path(c.Weights)
	}
	var err error
	if r.resume, err = checkpoint.Load(c.Resume, c.Device); err != nil {
		return err
	}
	if !r.resume.Meta.Partial() {
		return fmt.Errorf("%s: training already finished; nothing to resume", c.Resume)
	}
	rm := r.resume.Meta
	c.Dataset, c.Seed, c.Model, c.Epochs = rm.Dataset, rm.Seed, rm.Model, rm.Epochs
	c.Shots, c.ShotsFile, c.ShotsIndex = rm.Shots, string(rm.ShotsFile), rm.ShotsIndex
	if t := rm.Training; t != nil {
		c.Batch, c.LR, c.Betas = t.Batch, t.LR, &[2]float64{t.Beta1, t.Beta2}
		c.SoftmaxLoss, c.SelectOnValid, c.DrawShots = t.SoftmaxLoss, t.SelectOnValid, t.DrawShots
		switch dir := dataset.Dir(string(t.Data), rm.Dataset); {
		case c.Data == "":
			c.Data = string(t.Data)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("%s: the data this run trained on is not there (no folder %s): give --data where it is now", c.Resume, dir)
			}
		case !samepath.Same(c.Data, string(t.Data)):
			if st, err := os.Stat(dataset.Dir(c.Data, rm.Dataset)); err != nil || !st.IsDir() {
				return fmt.Errorf("--data %s: no folder %s there, the dataset this run trains on", c.Data, dataset.Dir(c.Data, rm.Dataset))
			}
			r.rep.Stage(fmt.Sprintf("data: continuing on %s (the run started on %s; the shots must be the same files)", c.Data, t.Data))
		}
	}
	if b := rm.Backbone; c.Shared == nil {
		c.Preset, c.BackboneSeed = b.Preset, b.Seed
		if b.Preset == "" && c.Weights == "" {
			// Where they were, or a file with their digest where madclip
			// looks for weights (as predict finds them).
			if c.Weights, err = rm.WeightsFile(c.Resume); err != nil {
				return err
			}
			r.weightsFound = true
			if !samepath.Same(c.Weights, string(b.File)) {
				r.rep.Stage(fmt.Sprintf("weights: %s is not there any more; using %s, which has the same digest", b.File, c.Weights))
			}
		}
	}
	return nil
}

// readShots picks the shots (the authors' list, a file, or a seeded draw)
// and decodes them.
func (r *trainingRun) readShots() error {
	c := r.c
	valid, err := dataset.ReadSplit(c.Data, c.Dataset, "valid")
	if err != nil {
		return err
	}
	if n := valid.SkipNote(); n != "" {
		r.rep.Warn(n)
	}
	r.rep.Stage("reading the few shots")
	if c.ShotsFile == "" && !c.DrawShots && dataset.HasAuthorsShots(c.Dataset, c.Shots) {
		c.ShotsFile, c.ShotsIndex = dataset.AuthorsShotsName(c.Dataset, c.Shots), 0
	}
	var shots dataset.Shots
	if c.ShotsFile != "" {
		if shots, err = dataset.OpenShots(c.ShotsFile, c.ShotsIndex); err != nil {
			return fmt.Errorf("the shots file %w", err)
		}
	} else if shots, err = dataset.DrawShots(valid.Samples, c.Shots, c.Seed); err != nil {
		n, a := dataset.Counts(valid.Samples)
		return fmt.Errorf("%s: %w; give --shots %d or fewer", valid.Dir, err, max(1, min(n, a)))
	}
	samples, heldOut, err := shots.Select(valid.Samples)
	if err != nil {
		if c.Resume != "" {
			return fmt.Errorf("%s: %w: the shots this run started on are not all in %s; give --data where they are", c.Resume, err, valid.Dir)
		}
		if strings.HasPrefix(c.ShotsFile, "authors:") {
			return fmt.Errorf("%w; the authors' list (%s) names images of their release; draw the shots from your data with --draw-shots", err, c.ShotsFile)
		}
		if c.ShotsFile != "" {
			return fmt.Errorf("%s: %w", c.ShotsFile, err)
		}
		return err
	}
	digest, err := dataset.Digests(samples)
	if err != nil {
		return err
	}
	if err := r.sameShots(shots, samples, digest); err != nil {
		return err
	}
	r.shots, r.shotsDigest = shots, digest
	r.rep.Stage(describeShots(*c, shots))
	if c.SelectOnValid {
		if n, a := dataset.Counts(heldOut); n == 0 || a == 0 {
			return fmt.Errorf("--select-on-valid needs valid images of both classes besides the shots, and %s has %d normal and %d abnormal beside them; give fewer --shots or leave out --select-on-valid", valid.Dir, n, a)
		}
	}
	if c.SelectOnValid {
		set, err := heldOutPrint(valid.Dir, heldOut)
		if err != nil {
			return err
		}
		if r.resume != nil {
			if was := r.resume.Meta.SelectedOn; was != nil && *was != set {
				return fmt.Errorf("%s: the held-out valid images in %s (%d normal, %d abnormal) are not those the run selected its epochs on (%d normal, %d abnormal; or one of them changed): its epochs' AUROCs would be compared over different images; resume on the data it started on, or start again",
					c.Resume, valid.Dir, set.Normal, set.Abnormal, was.Normal, was.Abnormal)
			}
		}
		r.selectedOn = &set
	}
	r.k, r.heldOut, r.hasMasks = len(shots.Normal), heldOut, valid.HasMasks
	if r.imgs, err = loadAll(samples, c.Model.ImageSize, dataset.DecodeOptions{Masks: valid.HasMasks, Limits: c.Limits}); err != nil {
		return err
	}
	if valid.HasMasks {
		r.warnEmptyMasks(samples[r.k:], r.imgs[r.k:])
	}
	return nil
}

// warnEmptyMasks says which abnormal shots have a mask that marks nothing:
// the segmentation head then learns their anomaly as normal tissue. A mask
// stored as 0/1 rather than 0/255 reads so (it is binarised at 0.5 of 255,
// as the authors' code does), which is easy to miss.
func (r *trainingRun) warnEmptyMasks(samples []dataset.Sample, imgs []dataset.Image) {
	var empty []string
	for i, im := range imgs {
		if !slices.ContainsFunc(im.Mask, func(v float32) bool { return v > 0.5 }) {
			empty = append(empty, samples[i].MaskPath)
		}
	}
	if len(empty) > 0 {
		r.rep.Warn(fmt.Sprintf("%d of the %d abnormal shots have a mask that marks nothing (e.g. %s): their anomaly is learnt as normal. A mask stored as 0/1 rather than 0/255 reads so; store masks as 0 and 255",
			len(empty), len(imgs), empty[0]))
	}
}

// buildModel opens the backbone, builds MadCLIP (fresh or resumed) and Adam
// over its trainable tensors.
func (r *trainingRun) buildModel(tk *bpe.Tokenizer) error {
	c := r.c
	r.rep.Stage("loading CLIP")
	var bb checkpoint.Backbone
	var err error
	if c.Shared != nil {
		r.backbone, bb = c.Shared.Model, c.Shared.Info
		if r.backbone.Options != c.Model.CLIPOptions(c.Device) {
			return fmt.Errorf("the shared backbone runs with other options than this run needs")
		}
	} else {
		src := checkpoint.Source{Preset: c.Preset, Seed: c.BackboneSeed, Weights: c.Weights}
		if r.backbone, bb, err = checkpoint.OpenBackbone(src, c.Model.CLIPOptions(c.Device)); err != nil {
			return err
		}
		r.ownBackbone = true
	}
	if r.resume != nil {
		// A resumed run continues on the backbone it started on.
		if rb := r.resume.Meta.Backbone; !rb.Same(bb) {
			if r.weightsFound {
				return fmt.Errorf("%s was started on other CLIP weights (digest %.12s…) than those now at %s (digest %.12s…): give the ones it started on with --weights", c.Resume, rb.Digest+rb.SHA256, c.Weights, bb.Digest)
			}
			return fmt.Errorf("%s was started on another backbone (%s) than the one given (%s)", c.Resume, rb, bb)
		}
		r.m, err = r.resume.Model(r.backbone, tk)
	} else {
		r.m, err = model.New(r.backbone, tk, c.Model, c.Seed)
	}
	if err != nil {
		return err
	}
	params := r.m.Params().Tensors()
	for _, p := range params {
		if err := p.SetRequiresGrad(true); err != nil {
			return err
		}
	}
	if r.opt, err = torch.NewAdam(params, torch.AdamConfig{LR: c.LR, Beta1: c.Betas[0], Beta2: c.Betas[1], Eps: torch.DefaultAdam().Eps}); err != nil {
		return err
	}
	r.meta = checkpoint.Meta{Version: checkpoint.Version, Model: r.m.Opts, Backbone: bb, Dataset: c.Dataset, Masks: r.hasMasks,
		Shots: r.k, ShotsFile: jsonpath.Path(shotsFileName(c.ShotsFile)), ShotsIndex: c.ShotsIndex, Seed: c.Seed, Epochs: c.Epochs,
		ShotImages: &checkpoint.ShotImages{Normal: r.shots.Normal, Abnormal: r.shots.Abnormal, SHA256: r.shotsDigest},
		SelectedOn: r.selectedOn,
		Training: &checkpoint.Training{Data: jsonpath.Path(absPath(c.Data)), Batch: c.Batch, LR: c.LR, Beta1: c.Betas[0], Beta2: c.Betas[1],
			SoftmaxLoss: c.SoftmaxLoss, SelectOnValid: c.SelectOnValid,
			DrawShots: c.ShotsFile == ""}} // drawn: asked for, or no list names them
	if r.resume != nil {
		if err := restoreAdam(r.opt, r.m, r.resume); err != nil {
			return err
		}
		r.first = [2]int{r.resume.Meta.Epoch, r.resume.Meta.Step}
		r.before = time.Duration(r.resume.Meta.Elapsed * float64(time.Second))
		r.meta = r.resume.Meta
		r.meta.Version = checkpoint.Version // this madclip writes the file now
		if r.meta.ShotImages == nil {       // written before 0.2.2 recorded them
			r.meta.ShotImages = &checkpoint.ShotImages{Normal: r.shots.Normal, Abnormal: r.shots.Abnormal, SHA256: r.shotsDigest}
		}
		if t := r.meta.Training; t != nil { // where the data is now, if it moved
			moved := *t
			moved.Data = jsonpath.Path(absPath(c.Data))
			r.meta.Training = &moved
		}
		if bb.File != "" { // where the weights are now, if they moved
			r.meta.Backbone.File = bb.File
		}
		r.meta.SelectedOn = r.selectedOn // recorded now if the run started before it was
	}
	return nil
}

// augment builds the static augmented set and its labels.
func (r *trainingRun) augment() error {
	r.rep.Stage("augmenting")
	r.data = torch.NewScope()
	var err error
	if r.g, err = torch.NewGenerator(r.c.Seed); err != nil {
		return err
	}
	size := int64(r.c.Model.ImageSize)
	err = torch.Scoped(func(s *torch.Scope) error { // frees the augmentation's temporaries
		r.images, r.masks, r.labels = augmentShots(r.imgs[r.k:], r.imgs[:r.k], size, r.hasMasks, r.c.Device, r.g)
		r.n = r.labels.Size(0)
		s.Keep(r.images, r.masks, r.labels)
		return nil
	})
	if err != nil {
		return err
	}
	r.res.Images = int(r.n)
	return r.data.Err()
}

// cacheFeatures computes the backbone's tapped features of every augmented
// image (and of the held-out valid images for selection) once; the image
// tower is released afterwards when the run owns it.
func (r *trainingRun) cacheFeatures(ctx context.Context) error {
	c := r.c
	var err error
	if !c.NoCache {
		r.rep.Stage(fmt.Sprintf("caching backbone features of %d augmented images", r.n))
		t0 := time.Now()
		store := c.Device
		if c.CacheOnHost {
			store = torch.CPU
		}
		if r.cache, err = newFeatureCache(ctx, r.m, r.images, c.Device, store, r.rep.Stage); err != nil {
			return err
		}
		if err := torch.Synchronize(c.Device); err != nil {
			return err
		}
		r.res.CacheTime = time.Since(t0)
	}
	// The held-out valid images (both classes needed) choose the label
	// threshold at the end, and with --select-on-valid the epoch too.
	if n, a := dataset.Counts(r.heldOut); n > 0 && a > 0 {
		why := "to calibrate the threshold"
		if c.SelectOnValid {
			why = "to select the epoch and calibrate the threshold"
		}
		r.rep.Stage(fmt.Sprintf("caching backbone features of %d held-out valid images (%d normal, %d abnormal) %s", len(r.heldOut), n, a, why))
		// Selection ranks the held-out pixels too when the model trains
		// with masks; calibration needs no mask.
		byPixels := r.hasMasks && c.SelectOnValid
		if r.sel, err = newSelector(ctx, r.m, r.heldOut, c.Model.ImageSize, r.hasMasks, byPixels, c.Limits, c.Device); err != nil {
			return err
		}
		if byPixels && r.sel.pixels == nil {
			r.rep.Warn("the masks of the held-out valid images mark nothing: the epoch is selected on image AUROC alone")
		}
		if r.resume != nil && c.SelectOnValid {
			if err := r.sel.restore(r.m, r.resume); err != nil {
				return err
			}
		}
	}
	if r.cache != nil && r.ownBackbone {
		r.backbone.ReleaseVision()
	}
	return nil
}

// epochs runs the training loop; an interruption or a non-finite loss saves
// a partial checkpoint and stops.
func (r *trainingRun) epochs(ctx context.Context) error {
	c := r.c
	batch := int64(c.Batch)
	steps := int((r.n + batch - 1) / batch)
	if r.resume != nil {
		// A run stopped at (epoch, step) has taken exactly that many Adam
		// steps; anything else is a checkpoint edited by hand.
		m := r.resume.Meta
		if err := m.CheckResumeState(steps); err != nil {
			return fmt.Errorf("%s: %w", c.Resume, err)
		}
		r.rep.Stage(fmt.Sprintf("resuming at epoch %d of %d, after step %d of %d (%d steps left)", m.Epoch+1, c.Epochs, m.Step, steps, c.Epochs*steps-int(m.Steps)))
	}
	r.rep.Start(c.Epochs, steps, r.first[0]*steps+r.first[1])
	var stepTotal time.Duration
	var stepCount int
	for epoch := r.first[0]; epoch < c.Epochs; epoch++ {
		perm := rand.New(rand.NewPCG(c.Seed, uint64(epoch)+1)).Perm(int(r.n))
		var lossSum float64
		var lossN int
		// Resumed inside this epoch: its mean covers the steps before the
		// stop whose losses the checkpoint kept (none in one from before
		// 0.2.2: the mean is then over the steps after the resume).
		if epoch == r.first[0] && r.first[1] > 0 {
			lossSum, lossN = r.resume.Meta.EpochLossSum, r.resume.Meta.EpochLossSteps
		}
		for step := 0; step < steps; step++ {
			if epoch == r.first[0] && step < r.first[1] {
				continue
			}
			if ctx.Err() != nil {
				return r.stopAt(epoch, step, lossSum, lossN, fmt.Errorf("%w at %s", ErrInterrupted, checkpoint.Meta{Epoch: epoch, Step: step, Epochs: r.c.Epochs}.StoppedAt()))
			}
			lo := int64(step) * batch
			idx := make([]int64, min(lo+batch, r.n)-lo)
			for i := range idx {
				idx[i] = int64(perm[lo+int64(i)])
			}
			t0 := time.Now()
			loss, err := trainStep(r.m, r.opt, *c, r.cache, r.images, r.masks, r.labels, idx)
			if err == nil && c.Device.IsCUDA() {
				// Adam's update is queued after the loss is read: wait for
				// it, so that each step's time includes its own update.
				err = torch.Synchronize(c.Device)
			}
			if err != nil {
				return err
			}
			stepTotal += time.Since(t0)
			stepCount++
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				if err := r.checkFeatures(); err != nil {
					return err
				}
				// Nothing is saved: resumed with its own settings, the run
				// would reach the same loss again, and the file at Out
				// (perhaps a finished model) is worth more than it.
				return &LossError{Loss: loss, Epoch: epoch + 1, Step: step + 1}
			}
			lossSum += loss
			lossN++
			r.rep.Step(epoch, step, loss)
		}
		mean := lossSum / float64(max(lossN, 1))
		r.res.LossHistory = append(r.res.LossHistory, mean)
		r.res.FinalLoss = mean
		r.rep.EpochDone(epoch, mean)
		if r.sel != nil && c.SelectOnValid {
			v, err := r.sel.update(r.m, epoch)
			if err != nil {
				return err
			}
			best := "the best so far"
			if r.sel.bestEpoch != epoch {
				best = fmt.Sprintf("best: epoch %d, %s", r.sel.bestEpoch+1, r.sel.best())
			}
			r.rep.Stage(fmt.Sprintf("epoch %d: valid %s (%s)", epoch+1, v, best))
		}
	}
	if stepCount > 0 {
		r.res.StepTime = stepTotal / time.Duration(stepCount)
	}
	return nil
}

// LossError is a training run stopped by a loss that became NaN or
// infinite (most often a learning rate too high for the data); nothing
// was saved.
type LossError struct {
	Loss        float64
	Epoch, Step int // 1-based
}

func (e *LossError) Error() string {
	return fmt.Sprintf("the loss became %v at epoch %d step %d; training stopped and nothing was saved", e.Loss, e.Epoch, e.Step)
}

// checkFeatures tells a non-finite loss that comes from the backbone (NaN
// or infinity in its features: corrupt weights, where no learning rate
// helps and no checkpoint is worth saving) from one that comes from
// training.
func (r *trainingRun) checkFeatures() error {
	if r.cache == nil {
		return nil
	}
	n, err := r.cache.nonFinite()
	if err != nil || n == 0 {
		return err
	}
	src := "the " + r.c.Preset + " preset's random weights"
	if r.c.Preset == "" {
		src = "the CLIP weights " + r.c.Weights
	}
	return fmt.Errorf("%s give %d NaN or infinite feature values: the weights are corrupt (nothing was saved)", src, n)
}

// elapsed is the run's wall time so far, earlier starts included.
func (r *trainingRun) elapsed() time.Duration { return r.before + time.Since(r.start) }

// stopAt saves a partial checkpoint (with Adam's state) at epoch and step,
// with the sum of the losses of lossN of the epoch's steps taken, and
// returns why the run stopped with where its parameters are.
func (r *trainingRun) stopAt(epoch, step int, lossSum float64, lossN int, why error) error {
	r.meta.Epoch, r.meta.Step, r.meta.EpochLossSum, r.meta.EpochLossSteps = epoch, step, lossSum, lossN
	r.meta.Elapsed = r.elapsed().Seconds()
	var selected map[string]*torch.Tensor
	if r.sel != nil && r.c.SelectOnValid && r.sel.bestParams != nil {
		// The best epoch so far, so that a resumed run keeps the one an
		// uninterrupted run would.
		selected = r.sel.state(r.m)
		r.sel.record(&r.meta)
	}
	at, err := saveOrRescue(r.c.Out, func(p string) error { return checkpoint.SavePartial(p, r.m, r.opt, r.meta, selected) })
	switch {
	case at == "":
		return fmt.Errorf("%w, and saving the checkpoint failed: %w", why, err)
	case err != nil:
		return fmt.Errorf("%w, and saving the checkpoint failed (%w): saved %s instead (continue with madclip train --resume %s)", why, err, at, shellquote.Path(at))
	}
	return fmt.Errorf("%w; saved %s (continue with madclip train --resume %s)", why, r.c.Out, shellquote.Path(r.c.Out))
}

// finish keeps the selected epoch, if any, and saves the checkpoint.
func (r *trainingRun) finish() error {
	if r.sel != nil && r.c.SelectOnValid {
		if err := r.sel.restoreBest(r.m); err != nil {
			return err
		}
		r.sel.record(&r.meta)
	}
	if r.sel != nil {
		cal, f1th, jth, err := r.sel.calibrate(r.m)
		if err != nil {
			return err
		}
		r.meta.Calibration, r.meta.Threshold, r.meta.ThresholdYouden = cal, f1th, jth
		r.rep.Stage(fmt.Sprintf("threshold %s (F1-max; Youden %s) on %d held-out valid images, image AUROC %.2f%% there",
			metrics.FormatThreshold(f1th), metrics.FormatThreshold(jth), cal.Normal+cal.Abnormal, 100*cal.AUROC))
		if cal.Normal < fewHeldOut || cal.Abnormal < fewHeldOut {
			what := "the threshold rests"
			if r.c.SelectOnValid {
				what = "the threshold and the epoch kept rest"
			}
			r.rep.Warn(fmt.Sprintf("%s on %d normal and %d abnormal held-out valid images only: take them as rough (valid images beyond the shots make them firmer)", what, cal.Normal, cal.Abnormal))
		}
		if cal.AUROC < 0.5 {
			r.rep.Warn(fmt.Sprintf("image AUROC %.2f%% on the held-out valid images, below chance: the model ranks them the wrong way round, and labels at its threshold mean little (more epochs or shots may help)", 100*cal.AUROC))
		}
	} else {
		r.rep.Warn("no held-out valid images of both classes: the label threshold stays uncalibrated (0.5)")
	}
	var err error
	if r.res.TextCosine, err = textCosine(r.m); err != nil {
		return err
	}
	// The resume state goes: a finished checkpoint is the same whether or
	// not its run was interrupted.
	r.meta.Epoch, r.meta.Step, r.meta.EpochLossSum, r.meta.EpochLossSteps, r.meta.Steps = r.c.Epochs, 0, 0, 0, 0
	r.meta.Elapsed = r.elapsed().Seconds()
	r.rep.Stage("saving " + r.c.Out)
	at, err := saveOrRescue(r.c.Out, func(p string) error { return checkpoint.Save(p, r.m, nil, r.meta) })
	switch {
	case at == "":
		return err
	case err != nil:
		return fmt.Errorf("%w; the trained model is saved as %s instead (move it where it belongs)", err, at)
	}
	r.res.Meta = r.meta
	return nil
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
// masks): the text features, the scores and the loss (under bf16 autocast
// on CUDA), backward (outside it, as PyTorch advises: before 2.5 its
// backward threads took autocast's default fp16 otherwise) and Adam's step,
// which is skipped when the loss is not finite. It returns the loss.
func Step(m *model.MadCLIP, opt *torch.Adam, taps []*torch.Tensor, labels, masks *torch.Tensor, o LossOptions, dev torch.Device) (float64, error) {
	var loss float64
	err := torch.Scoped(func(s *torch.Scope) error {
		var l *torch.Tensor
		forward := func() error {
			det, seg := m.Scores(taps, m.TextFeatures())
			l = Loss(det, seg, labels, masks, m.Grid(), o)
			return l.Err()
		}
		if err := model.WithPrecision(dev, forward); err != nil {
			return err
		}
		if err := opt.ZeroGrad(); err != nil {
			return err
		}
		if err := l.Backward(); err != nil {
			return err
		}
		var err error
		if loss, err = l.Item(); err != nil {
			return err
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil // reported by the caller; the parameters stay as they were
		}
		return opt.Step()
	})
	return loss, err
}

// restoreAdam gives the optimiser the moments a partial checkpoint saved,
// once checkpoint.CheckOptimState finds them able to continue the run.
func restoreAdam(opt *torch.Adam, m *model.MadCLIP, ck *checkpoint.Checkpoint) error {
	names := m.Params().Names()
	if err := checkpoint.CheckOptimState(slices.Sorted(maps.Keys(ck.Tensors)), ck.Meta.Steps, names); err != nil {
		return fmt.Errorf("%s: %w", ck.Path, err)
	}
	for i, name := range names {
		mom, ok := ck.Tensors["optim.m."+name]
		if !ok {
			continue
		}
		if err := opt.SetState(ck.Meta.Steps, i, mom, ck.Tensors["optim.v."+name]); err != nil {
			return fmt.Errorf("%s: optimiser state of %s: %w", ck.Path, name, err)
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

// heldOutPrint identifies the held-out images of the valid split in dir:
// their counts, and the SHA-256 of their names relative to dir with their
// labels and their files' SHA-256s (image and mask), sorted: the same set
// wherever the data lies, another if a file changed.
func heldOutPrint(dir string, heldOut []dataset.Sample) (checkpoint.HeldOut, error) {
	sums, err := dataset.Digests(heldOut)
	if err != nil {
		return checkpoint.HeldOut{}, err
	}
	lines := make([]string, 0, len(heldOut))
	for i, s := range heldOut {
		rel, err := filepath.Rel(dir, s.Path)
		if err != nil {
			return checkpoint.HeldOut{}, err
		}
		lines = append(lines, fmt.Sprintf("%t %s %s", s.Abnormal, filepath.ToSlash(rel), sums[i]))
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	n, a := dataset.Counts(heldOut)
	return checkpoint.HeldOut{Normal: n, Abnormal: a, NamesSHA256: hex.EncodeToString(sum[:])}, nil
}

// sameShots refuses to resume a run on other shots than it started with
// (a drawn set changes when the valid folder does), or on shots whose files
// have changed since (digests, of dataset.Digests of samples).
func (r *trainingRun) sameShots(shots dataset.Shots, samples []dataset.Sample, digests []string) error {
	if r.resume == nil || r.resume.Meta.ShotImages == nil {
		return nil
	}
	was := r.resume.Meta.ShotImages
	if slices.Equal(was.Normal, shots.Normal) && slices.Equal(was.Abnormal, shots.Abnormal) {
		for i, d := range was.SHA256 {
			if d != digests[i] {
				what := samples[i].Path
				if samples[i].MaskPath != "" { // one digest covers both
					what += " (or its mask " + samples[i].MaskPath + ")"
				}
				return fmt.Errorf("%s: the shot %s has changed since the run started; resuming would train on other data (start again without --resume)", r.resume.Path, what)
			}
		}
		return nil
	}
	return fmt.Errorf("%s: the run started on other shots (normal %s; abnormal %s) than are chosen now (normal %s; abnormal %s); has the valid folder or the shots file changed?",
		r.resume.Path, strings.Join(was.Normal, " "), strings.Join(was.Abnormal, " "), strings.Join(shots.Normal, " "), strings.Join(shots.Abnormal, " "))
}

// describeShots says where the shots come from and, for a draw, which
// images it chose (the first few of a long list; the checkpoint records
// them all).
func describeShots(c Config, shots dataset.Shots) string {
	k := len(shots.Normal)
	if c.ShotsFile != "" {
		return fmt.Sprintf("shots: %d normal + %d abnormal from %s", k, k, c.ShotsFile)
	}
	const shown = 4
	names := func(l []string) string {
		if len(l) <= shown {
			return strings.Join(l, " ")
		}
		return strings.Join(l[:shown], " ") + " ..."
	}
	return fmt.Sprintf("shots: %d normal + %d abnormal drawn with seed %d (normal %s; abnormal %s)", k, k, c.Seed, names(shots.Normal), names(shots.Abnormal))
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
func loadAll(samples []dataset.Sample, size int, o dataset.DecodeOptions) ([]dataset.Image, error) {
	o.Ahead = 2 * runtime.NumCPU()
	ch, stop := dataset.Decode(samples, size, o)
	defer stop()
	out := make([]dataset.Image, 0, len(samples))
	for d := range ch {
		if d.Err != nil {
			return nil, d.Err
		}
		out = append(out, d.Image)
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

// shotsFileName is a shots file as a checkpoint records it: an authors'
// list by its name, a file of the user's by its absolute path, so that
// --resume finds it from another folder.
func shotsFileName(f string) string {
	if f == "" || strings.HasPrefix(f, "authors:") {
		return f
	}
	return absPath(f)
}

// absPath is p made absolute when that is possible, so that a checkpoint
// finds its data from any folder.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
