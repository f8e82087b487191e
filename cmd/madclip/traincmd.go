package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"madclip/dataset"
	"madclip/model"
	"madclip/torch"
	"madclip/train"
)

func synthCommand() *cli.Command {
	return &cli.Command{
		Name:  "synth",
		Usage: "write a small synthetic dataset in the benchmark layout",
		Description: `Writes Brain_AD (with masks) and Chest_AD (without) under --out: textured
organ-like shapes, and in abnormal images a blob, a streak or a patch of
foreign texture with its exact mask. The same --seed writes the same files.

Examples:
  madclip synth --out /tmp/synth
  madclip train --data /tmp/synth --dataset Brain --preset tiny --epochs 5 --out brain.safetensors`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the dataset root to write", Required: true},
			&cli.Uint64Flag{Name: "seed", Value: 1},
			&cli.IntFlag{Name: "size", Value: 64, Usage: "image side in pixels"},
			&cli.IntFlag{Name: "valid", Value: 20, Usage: "images per class in valid/"},
			&cli.IntFlag{Name: "test", Value: 24, Usage: "images per class in test/"},
			&cli.StringFlag{Name: "datasets", Usage: "comma-separated dataset names, or all (the six of the benchmark; default Brain,Chest)"},
		},
		Action: func(c *cli.Context) error {
			if err := inRange(c, map[string][2]int{"size": {32, 4096}, "valid": {1, 100000}, "test": {1, 100000}}); err != nil {
				return fmt.Errorf("synth: %w", err)
			}
			var names []string
			switch d := c.String("datasets"); d {
			case "":
				for _, s := range dataset.SynthDatasets {
					names = append(names, s.Name)
				}
			case "all":
				for _, b := range dataset.Benchmarks {
					names = append(names, b.Name)
				}
			default:
				for _, n := range strings.Split(d, ",") {
					if n = strings.TrimSpace(n); n == "" || strings.ContainsAny(n, "/\\") {
						return fmt.Errorf("synth: bad dataset name %q", n)
					}
					names = append(names, n)
				}
			}
			err := dataset.Synth(c.String("out"), dataset.SynthOptions{Seed: c.Uint64("seed"), Size: c.Int("size"), Valid: c.Int("valid"), Test: c.Int("test"), Datasets: names})
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(c.App.Writer, "wrote %s\n", dataset.Dir(c.String("out"), n))
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
holds only the trained tensors and the whole configuration. Ctrl-C saves a
partial checkpoint that --resume continues.

The shots: for the six benchmark datasets with --shots 2, 4, 8 or 16, the
authors' fixed list (built in; the paper's protocol); --draw-shots, or any
other dataset or count, draws --shots per class with --seed; --shots-file
takes a list in the authors' format (lines "n-0: a.png ..." and "a-0: ...").

Examples:
  madclip train --data ~/data/MVFA --dataset Brain --weights ViT-L-14-336px.safetensors --shots 16 --out brain16.safetensors
  madclip train --data ~/data/MVFA --dataset Liver --shots 4 --draw-shots --seed 3 --out liver4-s3.safetensors
  madclip train --data ~/data/MVFA --dataset Liver --shots-file my-list.txt --out liver.safetensors
  madclip train --data mydata --dataset Knee --object "knee MRI" --shots 8 --out knee.safetensors
  madclip train --data /tmp/synth --dataset Brain --preset tiny --epochs 5 --out tiny.safetensors`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "the benchmark root (holding {Dataset}_AD folders)", Required: true},
			&cli.StringFlag{Name: "dataset", Usage: "Brain, Liver, Retina_RESC, Retina_OCT2017, Chest, Histopathology, or your own {name}_AD", Required: true},
			&cli.StringFlag{Name: "object", Usage: "the object word of the prompts (default: the dataset's, e.g. \"retinal OCT\")"},
			&cli.StringFlag{Name: "out", Usage: "the checkpoint to write", Required: true},
			&cli.StringFlag{Name: "weights", Usage: "CLIP weights (default: the largest known model found)"},
			&cli.StringFlag{Name: "preset", Usage: "train on a randomly initialised CLIP preset instead of weights (\"tiny\" for demos and tests)"},
			vocabFlag(),
			&cli.IntFlag{Name: "shots", Usage: "shots per class (default 16): the authors' list where they have one, else drawn with --seed"},
			&cli.BoolFlag{Name: "draw-shots", Usage: "draw the shots with --seed even where the authors have a list"},
			&cli.StringFlag{Name: "shots-file", Usage: "a few-shot list in the authors' format (lines n-0: ... / a-0: ...)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the draw, the initialisation, the augmentation and the shuffling"},
			&cli.IntFlag{Name: "epochs", Value: 60},
			&cli.IntFlag{Name: "batch", Value: 16},
			&cli.Float64Flag{Name: "lr", Value: 1e-3, Usage: "Adam's learning rate"},
			&cli.Float64Flag{Name: "beta1", Value: 0.5, Usage: "Adam's first-moment decay"},
			&cli.Float64Flag{Name: "beta2", Value: 0.999, Usage: "Adam's second-moment decay"},
			&cli.IntFlag{Name: "image-size", Value: 240, Usage: "input resolution"},
			&cli.IntSliceFlag{Name: "layers", Usage: "tapped ViT blocks (default 6,12,18,24 for ViT-L)"},
			&cli.StringFlag{Name: "resume", Usage: "continue a partial checkpoint"},
			&cli.BoolFlag{Name: "cache-on-host", Usage: "keep the feature cache in host memory (it moves there by itself when the GPU runs out)"},
			&cli.BoolFlag{Name: "select-on-valid", Usage: "keep the epoch with the best image AUROC on the valid images that are not shots (default: the last epoch)"},
			deviceFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress output"},
		}, modelFlags()...),
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

func trainAction(c *cli.Context) error {
	weightsPath := ""
	if c.String("preset") == "" {
		var err error
		if weightsPath, err = findWeights(c.String("weights")); err != nil {
			return err
		}
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	cfg := train.Config{
		Data: c.String("data"), Dataset: c.String("dataset"),
		ShotsFile: c.String("shots-file"), Shots: c.Int("shots"), DrawShots: c.Bool("draw-shots"), Seed: c.Uint64("seed"),
		Epochs: c.Int("epochs"), Batch: c.Int("batch"), LR: c.Float64("lr"), Beta1: c.Float64("beta1"), Beta2: c.Float64("beta2"),
		SoftmaxLoss: c.Bool("softmax-loss"),
		Model: model.Options{
			Object: c.String("object"), Layers: c.IntSlice("layers"), ImageSize: c.Int("image-size"),
			QuickGELU: c.Bool("quick-gelu"), CausalPrompts: c.Bool("causal-prompts"), MeanStd: c.Bool("mean-std"),
			GenericObject: c.Bool("generic-object"), SharedAdapters: c.Bool("shared-adapters"),
			NoSubtraction: c.Bool("no-subtraction"), CommonHead: c.Bool("common-head"), Handcrafted: c.Bool("handcrafted-prompts"),
		},
		Weights: weightsPath, Preset: c.String("preset"), BackboneSeed: 1,
		Out: c.String("out"), Resume: c.String("resume"), SelectOnValid: c.Bool("select-on-valid"), CacheOnHost: c.Bool("cache-on-host"),
	}
	if cfg.Epochs < 1 || cfg.Batch < 1 || !(cfg.LR > 0) {
		return fmt.Errorf("train: --epochs, --batch and --lr must be positive")
	}
	if err := inRange(c, map[string][2]int{"image-size": imageSizeRange, "shots": shotsRange}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	rep := newTrainReporter(os.Stderr, c.Bool("quiet"))
	var res *train.Result
	err = onCompute(func() error {
		dev, err := torch.ParseDevice(c.String("device"))
		if err != nil {
			return err
		}
		cfg.Device = dev
		res, err = train.Run(ctx, cfg, tk, rep)
		return err
	})
	rep.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: %d shots per class, %d augmented images, %d epochs, final loss %.4f, cos(t_n, t_ab) %.4f, %.1f ms per step, %s in all\n",
		cfg.Out, res.Meta.Shots, res.Images, res.Meta.Epochs, res.FinalLoss, res.TextCosine, float64(res.StepTime.Microseconds())/1000, res.TotalTime.Round(time.Millisecond))
	return nil
}

// trainReporter shows training: a progress bar on a terminal, a line per
// epoch otherwise, nothing when quiet.
type trainReporter struct {
	w       io.Writer
	quiet   bool
	tty     bool
	bar     *progressbar.ProgressBar
	steps   int
	epochs  int
	started time.Time
	done    int // steps reported in plain lines
}

func newTrainReporter(w io.Writer, quiet bool) *trainReporter {
	f, ok := w.(*os.File)
	return &trainReporter{w: w, quiet: quiet, tty: ok && isTerminal(f)}
}

func (r *trainReporter) Stage(msg string) {
	if !r.quiet {
		fmt.Fprintln(r.w, msg)
	}
}

func (r *trainReporter) Start(epochs, steps int) {
	r.epochs, r.steps, r.started = epochs, steps, time.Now()
	if r.quiet || !r.tty {
		return
	}
	r.bar = progressbar.NewOptions(epochs*steps,
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("step"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.w) }),
	)
}

func (r *trainReporter) Step(epoch, step int, loss float64) {
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("epoch %d/%d step %d/%d loss %.4f", epoch+1, r.epochs, step+1, r.steps, loss))
		_ = r.bar.Add(1)
	}
}

func (r *trainReporter) EpochDone(epoch int, mean float64) {
	if r.quiet || r.bar != nil {
		return
	}
	r.done += r.steps
	el := time.Since(r.started)
	fmt.Fprintf(r.w, "epoch %d/%d  loss %.4f  %.1f s  %.1f steps/s\n", epoch+1, r.epochs, mean, el.Seconds(), float64(r.done)/el.Seconds())
}

func (r *trainReporter) finish() {
	if r.bar != nil {
		_ = r.bar.Finish()
	}
}
