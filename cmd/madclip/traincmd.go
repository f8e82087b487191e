package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"madclip/authorship"
	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/internal/plural"
	"madclip/internal/samepath"
	"madclip/model"
	"madclip/model/clip/bpe"
	"madclip/train"
)

func synthCommand() *cli.Command {
	return &cli.Command{
		Name:  "synth",
		Usage: "write a small synthetic dataset in the benchmark layout",
		Description: `Writes Brain_AD (with masks) and Chest_AD (without) under --out: textured
organ-like shapes, and in abnormal images a blob, a streak or a patch of
foreign texture with its exact mask. The same --seed writes the same files.
A dataset folder that synth did not write (real data) is refused; one it
wrote before is written again.

Examples:
  madclip synth --out /tmp/synth
  madclip train --data /tmp/synth --dataset Brain --preset tiny --epochs 5 --out brain.safetensors`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the dataset root to write", Required: true},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic images"},
			&cli.IntFlag{Name: "size", Aliases: []string{"image-size"}, Value: 64, Usage: "image side in pixels"},
			&cli.IntFlag{Name: "valid", Value: 20, Usage: "images per class in valid/, or every file the authors' few-shot lists name where they name more (so that the paper's protocol runs on a benchmark dataset)"},
			&cli.IntFlag{Name: "test", Value: 24, Usage: "images per class in test/"},
			&cli.StringFlag{Name: "datasets", Usage: "comma-separated dataset names, or all (the six of the benchmark)", DefaultText: "Brain,Chest"},
		},
		Action: func(c *cli.Context) error {
			if err := inRange(c, map[string][2]int{"size": {32, 4096}, "valid": {1, 100000}, "test": {1, 100000}}); err != nil {
				return fmt.Errorf("synth: %w", err)
			}
			var names []string
			switch d := c.String("datasets"); d {
			case "":
				for _, s := range dataset.SynthDatasets() {
					names = append(names, s.Name)
				}
			case "all":
				for _, b := range dataset.Benchmarks() {
					names = append(names, b.Name)
				}
			default:
				for _, n := range strings.Split(d, ",") {
					if n = strings.TrimSpace(n); n == "" || strings.ContainsAny(n, "/\\") {
						return fmt.Errorf("synth: bad dataset name %q", n)
					}
					if n == "all" {
						return fmt.Errorf("synth: --datasets %s: all stands alone (it names every benchmark dataset)", d)
					}
					names = append(names, n)
				}
			}
			if d, ok := datasetAbove(c.String("out")); ok {
				where := "inside the dataset folder " + d
				if d == resolveDir(c.String("out")) {
					where = "a dataset folder"
				}
				return fmt.Errorf("synth: --out %s is %s; give the folder to hold the datasets' {name}_AD folders", c.String("out"), where)
			}
			started := func() {
				if !c.Bool("quiet") {
					fmt.Fprintf(os.Stderr, "writing synthetic %s (%d-px images) under %s\n", strings.Join(names, ", "), c.Int("size"), oneLine(c.String("out")))
				}
			}
			err := dataset.Synth(c.String("out"), dataset.SynthOptions{Seed: c.Uint64("seed"), Size: c.Int("size"), Valid: c.Int("valid"), Test: c.Int("test"), Datasets: names,
				Started: started})
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(c.App.Writer, "wrote %s\n", oneLine(dataset.Dir(c.String("out"), n)))
			}
			return nil
		},
	}
}

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "fit MadCLIP to k normal and k abnormal scans",
		Description: `Picks the few shots from the dataset's valid/ split, builds the static 16x
augmented set, caches the frozen backbone's features once, and trains the
adapters and prompts (Adam, 60 epochs of batch 16 by default). The checkpoint
holds only the trained tensors and the whole configuration. Ctrl-C (or
SIGTERM, SIGHUP) saves a partial checkpoint that --resume continues with the
settings it was started with: its data, dataset, backbone, shots, epochs;
a flag that contradicts them is an error, but --data may name where the
data is now (the shots must be the same files, checked by SHA-256). A
second signal stops at once, without saving.

The shots: for the six benchmark datasets with --shots 2, 4, 8 or 16, the
authors' fixed list (built in; the paper's protocol); --draw-shots, or any
other dataset or count, draws --shots per class with --seed; --shots-file
takes a list in the authors' format (lines "n-0: a.png ..." and "a-0: ...").
The valid images that are not shots calibrate the label threshold; with
--select-on-valid they also choose the epoch kept (the authors' criterion,
image + pixel AUROC, applied there instead of on the test split).

Examples:
  madclip train --data ~/data/MVFA --dataset Brain --weights ViT-L-14-336px.safetensors --shots 16 --out brain16.safetensors
  madclip train --data ~/data/MVFA --dataset Liver --shots 4 --draw-shots --seed 3 --out liver4-s3.safetensors
  madclip train --data ~/data/MVFA --dataset Liver --shots-file my-list.txt --out liver.safetensors
  madclip train --data ~/data/MVFA --dataset Retina_RESC --shots 16 --select-on-valid --out resc16.safetensors
  madclip train --data mydata --dataset Knee --object "knee MRI" --shots 8 --out knee.safetensors
  madclip train --data /tmp/synth --dataset Brain --preset tiny --epochs 5 --out tiny.safetensors
  madclip train --resume tiny.safetensors   # continues a run that Ctrl-C, SIGTERM or SIGHUP stopped`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "the benchmark root (holding {Dataset}_AD folders); required unless --resume"},
			&cli.StringFlag{Name: "dataset", Usage: "Brain, Liver, Retina_RESC, Retina_OCT2017, Chest, Histopathology, or your own (the folder {name}_AD, named without _AD); required unless --resume"},
			&cli.StringFlag{Name: "object", Usage: "the object word of the prompts (default: the dataset's, e.g. \"retinal OCT\"; required for a dataset of your own)"},
			&cli.StringFlag{Name: "out", Usage: "the checkpoint to write (required, except with --resume: then the resumed file unless given)"},
			&cli.StringFlag{Name: "weights", Usage: "CLIP weights (default: the largest known model found)"},
			&cli.StringFlag{Name: "preset", Usage: "train on a randomly initialised CLIP preset instead of weights (\"tiny\" for demos and tests)"},
			vocabFlag(),
			&cli.IntFlag{Name: "shots", Usage: "shots per class: the authors' list where they have one, else drawn with --seed", DefaultText: fmt.Sprint(train.PaperShots)},
			&cli.BoolFlag{Name: "draw-shots", Usage: "draw the shots with --seed even where the authors have a list"},
			&cli.StringFlag{Name: "shots-file", Usage: "a few-shot list in the authors' format (lines n-0: ... / a-0: ...)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the draw, the initialisation, the augmentation and the shuffling"},
			&cli.IntFlag{Name: "epochs", Value: train.PaperEpochs, Usage: "passes over the augmented shots"},
			&cli.IntFlag{Name: "batch", Value: train.PaperBatch, Usage: "images per optimisation step"},
			&cli.Float64Flag{Name: "lr", Value: train.PaperLR, Usage: "Adam's learning rate"},
			&cli.Float64Flag{Name: "beta1", Value: train.PaperBeta1, Usage: "Adam's first-moment decay"},
			&cli.Float64Flag{Name: "beta2", Value: train.PaperBeta2, Usage: "Adam's second-moment decay"},
			&cli.IntFlag{Name: "image-size", Value: model.PaperImageSize, Usage: "input resolution"},
			&cli.IntSliceFlag{Name: "layers", Usage: "tapped ViT blocks", DefaultText: "four evenly spaced blocks ending at the last: 6,12,18,24 for ViT-L, 3,6,9,12 for ViT-B, 1,2,3,4 for tiny"},
			&cli.StringFlag{Name: "resume", Usage: "continue a partial checkpoint with every setting it was started with"},
			&cli.BoolFlag{Name: "cache-on-host", Usage: "keep the feature cache in host memory (it moves there by itself when the GPU runs out)"},
			selectOnValidFlag(),
			deviceFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines (the summary and warnings still show)"},
		}, append(decodeFlags(), modelFlags()...)...),
		Action: trainAction,
	}
}

// modelFlags switch MadCLIP away from the reference behaviour.
func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "quick-gelu", Usage: "CLIP's QuickGELU instead of exact GELU (the reference code uses GELU)"},
		&cli.BoolFlag{Name: "causal-prompts", Usage: "keep the causal mask when encoding the learned prompts"},
		&cli.BoolFlag{Name: "mean-std", Usage: "normalise images with CLIP's mean and std"},
		&cli.BoolFlag{Name: "generic-object", Usage: "ablation: \"medical image\" instead of the object word"},
		&cli.BoolFlag{Name: "shared-adapters", Usage: "ablation: one set of adapters for both branches"},
		&cli.BoolFlag{Name: "no-subtraction", Usage: "ablation: scores without subtracting the opposite class"},
		&cli.BoolFlag{Name: "common-head", Usage: "ablation: one head for detection and segmentation"},
		&cli.BoolFlag{Name: "handcrafted-prompts", Usage: "ablation: fixed phrases instead of learnable prompts"},
		&cli.BoolFlag{Name: "softmax-loss", Usage: "ablation: CLIP-style softmax loss instead of the sigmoid one"},
	}
}

// modelOptions are the model options modelFlags (and train's --object,
// --layers and --image-size, where the command has them) ask for.
// trainFailure is the error a failed training run ends with: with the exit
// status of the signal that stopped it (sig, if any), or with what to do
// about a diverging loss.
func trainFailure(err error, sig os.Signal) error {
	if sig != nil && errors.Is(err, train.ErrInterrupted) {
		return signalError{sig, err}
	}
	if le := (*train.LossError)(nil); errors.As(err, &le) {
		return fmt.Errorf("%w; train again with a lower --lr", err)
	}
	return err
}

// checkObjectFlag refuses, before CLIP is loaded, an --object whose
// prompts would not fit CLIP's context (the value quoted short).
func checkObjectFlag(c *cli.Context, tk *bpe.Tokenizer) error {
	if !c.IsSet("object") {
		return nil
	}
	if err := model.CheckObject(tk, c.String("object")); err != nil {
		return fmt.Errorf("--object %.40q: %w", c.String("object"), err)
	}
	return nil
}

func modelOptions(c *cli.Context) model.Options {
	return model.Options{
		Object: c.String("object"), Layers: c.IntSlice("layers"), ImageSize: c.Int("image-size"),
		QuickGELU: c.Bool("quick-gelu"), CausalPrompts: c.Bool("causal-prompts"), MeanStd: c.Bool("mean-std"),
		GenericObject: c.Bool("generic-object"), SharedAdapters: c.Bool("shared-adapters"),
		NoSubtraction: c.Bool("no-subtraction"), CommonHead: c.Bool("common-head"), Handcrafted: c.Bool("handcrafted-prompts"),
	}
}

func trainAction(c *cli.Context) error {
	if err := trainFlagConflicts(c); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	resumed, err := resumedMeta(c)
	if err != nil {
		return err
	}
	weightsPath := ""
	if resumed != nil {
		weightsPath = c.String("weights") // else the file the checkpoint names
	} else if c.String("preset") == "" {
		if weightsPath, err = findWeights(c.String("weights")); err != nil {
			if errors.Is(err, errNoWeights) {
				err = fmt.Errorf("%w; or try madclip without them: --preset tiny (a small random CLIP, for trying the pipeline, not for results)", err)
			}
			return err
		}
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	if err := checkObjectFlag(c, tk); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	cfg := train.Config{
		Data: c.String("data"), Dataset: c.String("dataset"),
		ShotsFile: c.String("shots-file"), Shots: c.Int("shots"), DrawShots: c.Bool("draw-shots"), Seed: c.Uint64("seed"),
		Epochs: c.Int("epochs"), Batch: c.Int("batch"), LR: c.Float64("lr"),
		SoftmaxLoss: c.Bool("softmax-loss"),
		Model:       modelOptions(c),
		Weights:     weightsPath, Preset: c.String("preset"), BackboneSeed: checkpoint.DefaultBackboneSeed,
		Out: c.String("out"), Resume: c.String("resume"), SelectOnValid: c.Bool("select-on-valid"), CacheOnHost: c.Bool("cache-on-host"),
		Limits: decodeLimits(c),
	}
	if c.IsSet("beta1") || c.IsSet("beta2") {
		cfg.Betas = &[2]float64{c.Float64("beta1"), c.Float64("beta2")}
	}
	if resumed != nil && cfg.Out == "" {
		cfg.Out = cfg.Resume
	}
	if err := checkTrainSettings(c, cfg); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := checkLayersFit(cfg.Model.Layers, cfg.Preset, cfg.Weights); resumed == nil && err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := checkTrainOutput(c, cfg, resumed); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	// A terminal closing or a scheduler stopping the job saves a partial
	// checkpoint, as Ctrl-C does.
	ctx, caught, stop := notifySignals(c.Context, os.Exit, signalGrace, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	rep := newTrainReporter(os.Stderr, c.Bool("quiet"))
	var res *train.Result
	err = onCompute(func() error {
		dev, err := deviceFromFlag(c)
		if err != nil {
			return err
		}
		cfg.Device = dev
		res, err = train.Run(ctx, cfg, tk, rep)
		return err
	})
	rep.finish()
	if err != nil {
		return trainFailure(err, caught())
	}
	epochs := plural.Of(res.Meta.Epochs, "epoch")
	if m := res.Meta; m.SelectedEpoch > 0 {
		kept := fmt.Sprintf("kept epoch %d", m.SelectedEpoch)
		if m.ValidAUROC != nil {
			kept += fmt.Sprintf(", valid image AUROC %.2f%%", 100**m.ValidAUROC)
		}
		if m.ValidPixelAUROC != nil {
			kept += fmt.Sprintf(", pixel AUROC %.2f%%", 100**m.ValidPixelAUROC)
		}
		epochs += " (" + kept + ")"
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: %s per class, %d augmented images, %s, last epoch's mean loss %.4f, cos(t_n, t_ab) %.4f, %.1f ms per step, %s in all\n",
		oneLine(cfg.Out), plural.Of(res.Meta.Shots, "shot"), res.Images, epochs, res.FinalLoss, res.TextCosine, float64(res.StepTime.Microseconds())/1000, roughly(res.TotalTime))
	return nil
}

// trainReporter shows training: a progress bar on a terminal, a line per
// epoch otherwise (and one every stepLogEvery within a long epoch, such as
// ViT-L/14's on a CPU), nothing when quiet.
type trainReporter struct {
	w       io.Writer
	quiet   bool
	tty     bool
	bar     *progressbar.ProgressBar
	steps   int
	epochs  int
	started time.Time
	last    time.Time // of the last line in a log
	done    int       // steps taken in this process (a resumed run's count from the resume)
	before  int       // steps taken before this process (by the run a resume continues)
}

func newTrainReporter(w io.Writer, quiet bool) *trainReporter {
	f, ok := w.(*os.File)
	return &trainReporter{w: w, quiet: quiet, tty: ok && isTerminal(f)}
}

func (r *trainReporter) Stage(msg string) {
	if r.quiet {
		return
	}
	if r.bar != nil && !r.bar.IsFinished() {
		_ = r.bar.Clear() // the line goes where the bar was; the next step draws it again
	}
	fmt.Fprintln(r.w, oneLine(msg)) // it may name files: escaped as every message is
}

// Warn shows msg as a warning, quiet or not: --quiet hides progress, not
// what the user must know about the result.
func (r *trainReporter) Warn(msg string) {
	if r.bar != nil && !r.bar.IsFinished() {
		_ = r.bar.Clear()
	}
	fmt.Fprintln(r.w, "warning: "+oneLine(msg))
}

func (r *trainReporter) Start(epochs, steps, done int) {
	r.epochs, r.steps, r.started, r.before = epochs, steps, time.Now(), done
	r.last = r.started
	if r.quiet || !r.tty || epochs*steps == done {
		return
	}
	// The bar counts the steps left (a resumed run's too), at the rate
	// they run: its clock starts now, with none done (Add(0)), not at the
	// first step's end.
	r.bar = progressbar.NewOptions(epochs*steps-done,
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionSetDescription(fmt.Sprintf("epoch %d/%d step %d/%d", done/steps+1, epochs, done%steps, steps)),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("step"),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.w) }),
	)
	_ = r.bar.Add(0)
}

// stepLogEvery is how often a log gets a line within an epoch.
const stepLogEvery = 30 * time.Second

func (r *trainReporter) Step(epoch, step int, loss float64) {
	r.done++
	if r.bar == nil {
		if !r.quiet && step+1 < r.steps && time.Since(r.last) >= stepLogEvery {
			r.last = time.Now()
			fmt.Fprintln(r.w, r.stepLine(epoch, step, loss, r.last.Sub(r.started)))
		}
		return
	}
	// Each call draws the bar: the count first, then the words, so that
	// the drawing left on the screen has both new; but the last count
	// ends the bar's line, so the words go before it.
	words := fmt.Sprintf("epoch %d/%d step %d/%d loss %.4f", epoch+1, r.epochs, step+1, r.steps, loss)
	if st := r.bar.State(); st.CurrentNum+1 >= st.Max {
		r.bar.Describe(words)
		_ = r.bar.Add(1)
		return
	}
	_ = r.bar.Add(1)
	r.bar.Describe(words)
}

// EpochDone writes a line per epoch, kept on a terminal too (above the
// bar) as the run's loss history: the mean loss, the time the epochs have
// taken so far in this process, the time the rest should take at that
// pace, and the pace.
func (r *trainReporter) EpochDone(epoch int, mean float64) {
	if r.quiet {
		return
	}
	if r.bar != nil && !r.bar.IsFinished() {
		_ = r.bar.Clear()
	}
	r.last = time.Now()
	fmt.Fprintln(r.w, r.epochLine(epoch, mean, r.last.Sub(r.started)))
}

// stepLine is a log's line within an epoch: "epoch 3/60 step 12/32  loss
// 9.1234  2m7s elapsed, about 1h2m left".
func (r *trainReporter) stepLine(epoch, step int, loss float64, el time.Duration) string {
	s := fmt.Sprintf("epoch %d/%d step %d/%d  loss %.4f  %s elapsed", epoch+1, r.epochs, step+1, r.steps, loss, roundDuration(el))
	if left := r.epochs*r.steps - r.before - r.done; left > 0 {
		s += fmt.Sprintf(", about %s left", roundDuration(el/time.Duration(r.done)*time.Duration(left)))
	}
	return s
}

func (r *trainReporter) epochLine(epoch int, mean float64, el time.Duration) string {
	rate := fmt.Sprintf("%.1f steps/s", float64(r.done)/el.Seconds())
	if r.done > 0 && el.Seconds() > float64(r.done) { // slower than a step a second (ViT-L on a CPU)
		rate = fmt.Sprintf("%.1f s/step", el.Seconds()/float64(r.done))
	}
	s := fmt.Sprintf("epoch %d/%d  loss %.4f  %s elapsed", epoch+1, r.epochs, mean, roundDuration(el))
	if left := r.epochs*r.steps - r.before - r.done; left > 0 && r.done > 0 {
		s += fmt.Sprintf(", about %s left", roundDuration(el/time.Duration(r.done)*time.Duration(left)))
	}
	return s + "  " + rate
}

// roundDuration writes d as progress lines give times: "4.7s" under a
// minute, "2m7s" beyond.
func roundDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// finish ends the bar's line: a run stopped early (a signal, an error)
// leaves the bar where it stopped, not drawn full.
func (r *trainReporter) finish() {
	if r.bar != nil && !r.bar.IsFinished() {
		_ = r.bar.Exit()
	}
}

// trainFlagConflicts refuses flags that contradict each other.
func trainFlagConflicts(c *cli.Context) error {
	if err := oneBackbone(c); err != nil {
		return err
	}
	if c.IsSet("shots") && c.String("shots-file") != "" {
		return fmt.Errorf("--shots-file sets the shots; --shots cannot be given with it")
	}
	if c.Bool("draw-shots") && c.String("shots-file") != "" {
		return fmt.Errorf("--draw-shots and --shots-file both choose the shots; give one")
	}
	return checkLayers(c.IntSlice("layers"))
}

// resumedMeta reads the description of the checkpoint --resume names (nil
// without --resume, when --data, --dataset and --out are required), and
// refuses one that has no run to continue or flags that contradict it.
func resumedMeta(c *cli.Context) (*checkpoint.Meta, error) {
	ck := c.String("resume")
	if ck == "" {
		for _, f := range []string{"data", "dataset", "out"} {
			if c.String(f) == "" {
				return nil, fmt.Errorf("train: --%s is required (see madclip train --help)", f)
			}
		}
		return nil, nil
	}
	m, err := checkpoint.ReadMeta(ck)
	if err != nil {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	switch {
	case m.Imported != nil:
		return nil, fmt.Errorf("--resume %s: a model imported from %s, not a run of madclip train: there is no training to continue", ck, oneLine(string(m.Imported.File)))
	case !m.Partial():
		return nil, fmt.Errorf("--resume %s: training already finished; nothing to resume", ck)
	}
	if err := resumeConflicts(c, m); err != nil {
		return nil, fmt.Errorf("train --resume %s: %w", ck, err)
	}
	return &m, nil
}

// resumeConflicts refuses flags given with --resume that contradict the
// checkpoint's settings: a resumed run continues exactly as started.
func resumeConflicts(c *cli.Context, m checkpoint.Meta) error {
	t := m.Training
	if t == nil {
		t = &checkpoint.Training{}
	}
	type setting struct {
		flag        string
		given, want any
	}
	var checks []setting
	add := func(flag string, want any, given func() any) {
		if c.IsSet(flag) {
			checks = append(checks, setting{flag, given(), want})
		}
	}
	add("dataset", m.Dataset, func() any { return c.String("dataset") })
	add("shots", m.Shots, func() any { return c.Int("shots") })
	add("seed", m.Seed, func() any { return c.Uint64("seed") })
	add("epochs", m.Epochs, func() any { return c.Int("epochs") })
	add("image-size", m.Model.ImageSize, func() any { return c.Int("image-size") })
	add("object", m.Model.Object, func() any { return c.String("object") })
	add("preset", m.Backbone.Preset, func() any { return c.String("preset") })
	add("layers", fmt.Sprint(m.Model.Layers), func() any { return fmt.Sprint(c.IntSlice("layers")) })
	mo := m.Model
	for _, b := range []struct {
		flag string
		want bool
	}{
		{"quick-gelu", mo.QuickGELU}, {"causal-prompts", mo.CausalPrompts}, {"mean-std", mo.MeanStd},
		{"generic-object", mo.GenericObject}, {"shared-adapters", mo.SharedAdapters}, {"no-subtraction", mo.NoSubtraction},
		{"common-head", mo.CommonHead}, {"handcrafted-prompts", mo.Handcrafted},
	} {
		add(b.flag, b.want, func() any { return c.Bool(b.flag) })
	}
	if c.String("weights") != "" && m.Backbone.Preset != "" {
		return fmt.Errorf("--weights: this run trains on the %q preset's random weights, not on a weights file", m.Backbone.Preset)
	}
	if m.Training != nil {
		add("batch", t.Batch, func() any { return c.Int("batch") })
		add("lr", t.LR, func() any { return c.Float64("lr") })
		add("beta1", t.Beta1, func() any { return c.Float64("beta1") })
		add("beta2", t.Beta2, func() any { return c.Float64("beta2") })
		add("data", t.Data, func() any {
			// Another spelling of it, a link to it, or where the data is now:
			// the shots' SHA-256s, when recorded, are checked against the
			// run's; without them only data that has gone from its place may
			// be found elsewhere.
			hashed := m.ShotImages != nil && len(m.ShotImages.SHA256) > 0
			if samepath.Same(c.String("data"), string(t.Data)) || hashed || !isDir(dataset.Dir(string(t.Data), m.Dataset)) {
				return t.Data
			}
			return absPath(c.String("data"))
		})
		add("select-on-valid", t.SelectOnValid, func() any { return c.Bool("select-on-valid") })
		add("softmax-loss", t.SoftmaxLoss, func() any { return c.Bool("softmax-loss") })
		add("draw-shots", t.DrawShots, func() any { return c.Bool("draw-shots") })
	} else if !c.IsSet("data") {
		return fmt.Errorf("this checkpoint predates recorded settings: give --data")
	}
	if f := c.String("shots-file"); c.IsSet("shots-file") {
		given := any(f)
		if samepath.Same(f, string(m.ShotsFile)) { // another spelling, a link to it
			given = m.ShotsFile
		}
		checks = append(checks, setting{"shots-file", given, m.ShotsFile})
	}
	for _, s := range checks {
		if fmt.Sprint(s.given) != fmt.Sprint(s.want) {
			return fmt.Errorf("--%s %v contradicts the checkpoint's %v (a resumed run continues with the settings it started with)", s.flag, s.given, s.want)
		}
	}
	return nil
}

// selectOnValidFlag is --select-on-valid, in train and bench.
func selectOnValidFlag() cli.Flag {
	return &cli.BoolFlag{Name: "select-on-valid", Usage: "keep the best epoch on the valid images that are not shots (image + pixel AUROC with masks, image AUROC without), not the last one"}
}

// checkTrainSettings refuses numbers and names training cannot use, before
// any work.
func checkTrainSettings(c *cli.Context, cfg train.Config) error {
	bounds := map[string][2]int{"image-size": imageSizeRange, "shots": shotsRange, "epochs": epochsRange, "batch": batchRange}
	if err := inRange(c, bounds); err != nil {
		return err
	}
	if cfg.LR == 0 && c.IsSet("lr") {
		// 1e-400 reads as 0: say why the number shown is not the one typed.
		return errors.New("--lr reads as 0 (0 itself, or a number below 5e-324, which rounds to it): Adam's learning rate must be in (0, 1] (the paper's is 0.001)")
	}
	if cfg.LR > 0 && cfg.LR < 0x1p-126 { // float32's smallest normal number
		return fmt.Errorf("--lr %v is below the smallest normal float32 (1.2e-38): the float32 parameters would never change (the paper's rate is 0.001)", cfg.LR)
	}
	if !(cfg.LR > 0 && cfg.LR <= 1) {
		return fmt.Errorf("--lr %v: Adam's learning rate must be in (0, 1] (the paper's is 0.001)", cfg.LR)
	}
	for _, flag := range []string{"beta1", "beta2"} {
		if b := c.Float64(flag); c.IsSet(flag) && !(b >= 0 && b < 1) {
			return fmt.Errorf("--%s %v: Adam's decay rates must be in [0, 1)", flag, b)
		}
	}
	if cfg.Dataset != "" {
		if err := dataset.CheckName(cfg.Dataset); err != nil {
			return err
		}
	}
	return nil
}

// checkTrainOutput checks --out before hours of training: it can be
// written, is not an input (the weights, the shots file, the vocab, an
// image or mask of the dataset; the resumed checkpoint is the default
// output), lies outside the dataset's folder and is not named as an image.
func checkTrainOutput(c *cli.Context, cfg train.Config, resumed *checkpoint.Meta) error {
	inputs := []namedPath{{role: "--weights", path: cfg.Weights}, {role: "--shots-file", path: cfg.ShotsFile}, {role: "--vocab", path: c.String("vocab")}}
	data, name := cfg.Data, cfg.Dataset
	if resumed != nil {
		inputs = append(inputs, recordedWeights(cfg.Resume, *resumed)...)
		if name == "" {
			name = resumed.Dataset
		}
		if data == "" && resumed.Training != nil {
			data = string(resumed.Training.Data)
		}
	}
	inputs = append(inputs, splitInputs(data, name, "valid")...)
	if err := checkOutputs([]namedPath{{role: "--out", path: cfg.Out, kind: authorship.Checkpoint}}, inputs); err != nil {
		return err
	}
	if err := outsideDatasets("--out", cfg.Out, fileOutput, data, []string{name}); err != nil {
		return err
	}
	if err := wellNamed("--out", cfg.Out, ".safetensors"); err != nil {
		return err
	}
	return writableFolder("--out", cfg.Out, authorship.Checkpoint)
}
