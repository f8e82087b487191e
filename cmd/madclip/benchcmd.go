package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/bench"
	"madclip/dataset"
	"madclip/internal/plural"
	"madclip/model"
	"madclip/train"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "reproduce the paper's benchmark: shots × seeds × datasets, trained and evaluated",
		Description: `For every dataset present under --data, every shot count and every seed:
takes the shots, trains (the paper's settings unless overridden), evaluates
on the test split, and prints a Markdown table in the layout of the paper's
tables: our mean ± std over the seeds (the mean alone for one seed), with the
paper's number beside it, "(paper 93.93)", for every cell it has (Tables 1 and 2 for 2, 4, 8
and 16 shots; Table 3 for the cross-dataset pairs).

The shots follow the paper's protocol: the six benchmark datasets use the
authors' fixed lists (one set of k normal + k abnormal images), and the seeds
vary initialisation, augmentation draws and order. --draw-shots draws the
shots with each seed instead (the honest spread over the choice of shots).
Each run keeps its last epoch; --select-on-valid keeps the best one on the
held-out valid images by the authors' criterion (they chose on the test
split, which madclip never does).

--cross TRAIN:TEST trains on TRAIN and tests on TEST; --cross paper runs
Table 3's pairs (Chest:NIHChest, Chest:CheXpert, Brain:ADNI,
Retina_OCT2017:OCTDL, Retina_RESC:OCTDL), whose targets you supply in the same
layout ({root}/NIHChest_AD/test/...). Datasets that are not present are
skipped with a note. --json-out writes every run's result with its
provenance (checkpoint and SHA-256, backbone, threshold) to a file; --json
prints the same to standard output instead of the table. The checkpoints are
kept in --work; without it they are deleted at the end, and the JSON gives
only their SHA-256. A line per run
says how many runs are done, the time taken and about how much is left.

Examples:
  madclip bench --data ~/data/MVFA --shots 16 --seeds 3 --json-out results.json
  madclip bench --data ~/data/MVFA --datasets Brain,Liver --shots 2,4,8,16 --draw-shots
  madclip bench --data ~/data/MVFA --cross paper --shots 16
  madclip bench --data /tmp/synth --preset tiny --shots 2,4 --seeds 2 --epochs 2 --image-size 56`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "data", Required: true, Usage: "the benchmark root"},
			&cli.StringFlag{Name: "datasets", Value: "all", Usage: "comma-separated datasets, or all"},
			&cli.StringFlag{Name: "shots", Value: "2,4,8,16", Usage: "comma-separated shot counts"},
			&cli.IntFlag{Name: "seeds", Value: 3, Usage: "runs per dataset and shot count, seeded 1, 2, ..."},
			&cli.IntFlag{Name: "epochs", Value: train.PaperEpochs, Usage: "training epochs per run"},
			&cli.IntFlag{Name: "batch", Value: train.PaperBatch, Usage: "images per optimisation step"},
			&cli.IntFlag{Name: "image-size", Value: model.PaperImageSize, Usage: "input resolution"},
			&cli.StringFlag{Name: "weights", Usage: "CLIP weights (default: the largest known model found)"},
			&cli.StringFlag{Name: "preset", Usage: "a random CLIP preset instead of weights (\"tiny\")"},
			&cli.StringFlag{Name: "work", Usage: "folder for the checkpoints (default: a temporary one, removed)"},
			&cli.StringFlag{Name: "json-out", Usage: "write all results, with their provenance, to this JSON file"},
			&cli.BoolFlag{Name: "json", Usage: "print all results as JSON instead of the table"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines (the table, warnings and notes still show)"},
			&cli.StringSliceFlag{Name: "cross", Usage: "cross-dataset setting: TRAIN:TEST, e.g. Brain:ADNI (repeatable), or paper for Table 3's pairs"},
			&cli.BoolFlag{Name: "draw-shots", Usage: "draw the shots with each seed instead of the authors' fixed lists"},
			&cli.StringFlag{Name: "object", Usage: "the object word of the prompts, needed for a dataset of your own (a bench that trains on one dataset; default: each benchmark dataset's own)"},
			selectOnValidFlag(),
			vocabFlag(),
			deviceFlag(),
		}, append(decodeFlags(), modelFlags()...)...),
		Action: benchAction,
	}
}

func benchAction(c *cli.Context) error {
	plan, err := planBench(c)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	shots, datasets, cross := plan.shots, plan.datasets, plan.cross
	weights := ""
	if c.String("preset") == "" {
		var err error
		if weights, err = findWeights(c.String("weights")); err != nil {
			if errors.Is(err, errNoWeights) {
				err = fmt.Errorf("%w; or try madclip without them: --preset tiny (a small random CLIP, for trying the pipeline, not for results)", err)
			}
			return err
		}
	}
	if err := benchOutputs(c, plan, weights); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	if err := checkObjectFlag(c, tk); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	work, kept := c.String("work"), true
	if work == "" {
		kept = false
		if work, err = os.MkdirTemp("", "madclip-bench"); err != nil {
			return fmt.Errorf("bench: a temporary work folder in %s ($TMPDIR, else /tmp): %w; set TMPDIR or give --work", os.TempDir(), err)
		}
		defer os.RemoveAll(work)
	} else if err := new(madeFolders).mkdirAll(work); err != nil {
		return fmt.Errorf("bench: --work %s: %w", work, err)
	} else if err := canCreateIn("--work", work); err != nil {
		return fmt.Errorf("bench: %w", err) // before the runs, not at the first save
	}
	// Ctrl-C or a scheduler's SIGTERM stops the run in progress (training
	// saves a partial checkpoint, in --work where one is given) and the
	// deferred clean-up removes the temporary folder.
	ctx, caught, stop := notifySignals(c.Context, os.Exit, signalGrace, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var results []bench.Result
	err = onCompute(func() error {
		dev, err := deviceFromFlag(c)
		if err != nil {
			return err
		}
		results, err = bench.Run(ctx, bench.Config{
			Data: c.String("data"), Datasets: datasets, Shots: shots, Seeds: c.Int("seeds"), Epochs: c.Int("epochs"),
			Weights: weights, Preset: c.String("preset"), Device: dev, Size: c.Int("image-size"), Work: work, Batch: c.Int("batch"),
			Cross: cross, DrawShots: c.Bool("draw-shots"), Version: version, Limits: decodeLimits(c),
			Model: modelOptions(c), SoftmaxLoss: c.Bool("softmax-loss"), SelectOnValid: c.Bool("select-on-valid"),
			Warn: func(msg string) { fmt.Fprintln(os.Stderr, msg) }, // --quiet or not
		}, tk, func(msg string) {
			if !c.Bool("quiet") {
				fmt.Fprintln(os.Stderr, msg)
			}
		})
		return err
	})
	sig := caught()
	interrupted := sig != nil && errors.Is(err, train.ErrInterrupted)
	if interrupted && !kept {
		err = fmt.Errorf("bench interrupted after %s; its temporary folder is removed", plural.Of(len(results), "finished run"))
	}
	// The runs finished before a failure or an interruption are shown and
	// written all the same: hours of them are not lost to the last one.
	if len(results) > 0 {
		if werr := writeResults(c, results, kept); werr != nil {
			return errors.Join(err, werr)
		}
		if err != nil {
			err = fmt.Errorf("%w (%s shown above%s)", err, plural.Of(len(results), "finished run"), jsonOutNote(c))
		}
	}
	if interrupted {
		return signalError{sig, err}
	}
	if err != nil {
		return err
	}
	if len(results) == 0 {
		what := "none of " + plan.wanted() + " is"
		if len(plan.cross) == 0 && len(plan.datasets) == 1 {
			what = "the dataset " + plan.datasets[0] + " is not"
		}
		return fmt.Errorf("bench: %s under %s%s", what, c.String("data"), dataset.MissingHint(c.String("data"), plan.first()))
	}
	return nil
}

// jsonOutNote is " and in FILE" when --json-out names one.
func jsonOutNote(c *cli.Context) string {
	if p := c.String("json-out"); p != "" {
		return " and in " + oneLine(p)
	}
	return ""
}

// writeResults writes the results to --json-out, if given, then prints
// them (the table, or JSON with --json): the file first, so that a reader
// that stops reading (bench … | head) cannot cost it.
func writeResults(c *cli.Context, results []bench.Result, kept bool) error {
	if !kept {
		// The temporary folder goes when bench ends: name no file in it.
		for i := range results {
			results[i].Provenance.Checkpoint = ""
		}
	}
	b, err := marshalJSON(results, "  ")
	if err != nil {
		return err
	}
	if p := c.String("json-out"); p != "" {
		err := atomicfile.Write(p, 0o644, func(w io.Writer) error {
			_, err := w.Write(append(b, '\n'))
			return err
		})
		if err != nil {
			return err
		}
	}
	if c.Bool("json") {
		fmt.Fprintln(c.App.Writer, string(b))
	} else {
		fmt.Fprint(c.App.Writer, bench.Table(results))
	}
	return nil
}

// first is the first dataset the plan names (the first benchmark dataset
// when it names none), for a hint at what is missing.
func (p benchPlan) first() string {
	switch {
	case len(p.cross) > 0:
		return p.cross[0][0]
	case len(p.datasets) > 0:
		return p.datasets[0]
	}
	return dataset.Benchmarks()[0].Name
}

// wanted names the datasets the plan asked for, for the message that none
// of them is there.
func (p benchPlan) wanted() string {
	var names []string
	switch {
	case len(p.cross) > 0:
		for _, pair := range p.cross {
			names = append(names, pair[0]+":"+pair[1])
		}
		return "the pairs " + strings.Join(names, ", ")
	case len(p.datasets) > 0:
		return "the datasets " + strings.Join(p.datasets, ", ")
	}
	for _, b := range dataset.Benchmarks() {
		names = append(names, b.Name)
	}
	return "the benchmark's datasets (" + strings.Join(names, ", ") + ")"
}

// benchPlan is what bench runs, from its flags.
type benchPlan struct {
	shots    []int
	datasets []string // nil: all
	cross    [][2]string
}

// planBench parses and checks bench's lists and counts: a shot count,
// dataset or pair given twice would only repeat runs.
func planBench(c *cli.Context) (benchPlan, error) {
	var p benchPlan
	if err := oneBackbone(c); err != nil {
		return p, err
	}
	if err := inRange(c, map[string][2]int{"image-size": imageSizeRange, "batch": batchRange, "seeds": {1, 1000}, "epochs": epochsRange}); err != nil {
		return p, err
	}
	seen := map[string]bool{}
	once := func(flag, v string) error {
		if seen[flag+"\x00"+v] {
			return fmt.Errorf("--%s lists %s twice", flag, v)
		}
		seen[flag+"\x00"+v] = true
		return nil
	}
	for _, s := range strings.Split(c.String("shots"), ",") {
		s = strings.TrimSpace(s)
		k, err := strconv.Atoi(s)
		if err != nil || k < shotsRange[0] || k > shotsRange[1] {
			return p, fmt.Errorf("bad --shots %q (want counts such as 2,4,8,16)", c.String("shots"))
		}
		if err := once("shots", s); err != nil {
			return p, err
		}
		p.shots = append(p.shots, k)
	}
	if d := c.String("datasets"); d != "all" {
		for _, n := range strings.Split(d, ",") {
			n = strings.TrimSpace(n)
			if n == "all" {
				return p, fmt.Errorf("--datasets %q: all stands alone (all six), not in a list", d)
			}
			if err := dataset.CheckName(n); err != nil {
				return p, fmt.Errorf("--datasets %q: %w", d, err)
			}
			if err := once("datasets", n); err != nil {
				return p, err
			}
			p.datasets = append(p.datasets, n)
		}
	}
	var pairs []string
	for _, s := range c.StringSlice("cross") {
		if s == "paper" {
			pairs = append(pairs, bench.CrossTargets()...)
		} else {
			pairs = append(pairs, s)
		}
	}
	for _, s := range pairs {
		a, b, ok := strings.Cut(s, ":")
		if !ok || dataset.CheckName(a) != nil || dataset.CheckName(b) != nil || strings.Contains(b, ":") {
			return p, fmt.Errorf("bad --cross %q (want TRAIN:TEST, two dataset names)", s)
		}
		if a == b {
			return p, fmt.Errorf("--cross %q trains and tests on one dataset; that is --datasets %s", s, a)
		}
		if err := once("cross", s); err != nil {
			return p, err
		}
		p.cross = append(p.cross, [2]string{a, b})
	}
	if c.IsSet("object") {
		if trained := p.trained(); len(trained) != 1 {
			return p, fmt.Errorf("--object is one dataset's object word, but this bench trains on %s: bench your own dataset on its own (--datasets NAME --object WORD)", strings.Join(trained, ", "))
		}
	}
	return p, nil
}

// trained lists the datasets the plan trains on, each once.
func (p benchPlan) trained() []string {
	var names []string
	switch {
	case len(p.cross) > 0:
		for _, pair := range p.cross {
			names = append(names, pair[0])
		}
	case len(p.datasets) > 0:
		names = p.datasets
	default:
		for _, b := range dataset.Benchmarks() {
			names = append(names, b.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// benchOutputs checks, before hours of runs, what bench writes where the
// user says: the runs' checkpoints in --work and --json-out. Neither may be
// an input (the weights, the vocab, an image of the datasets), lie inside a
// dataset's folder, or be written twice; --json-out's folder must take
// files.
func benchOutputs(c *cli.Context, p benchPlan, weights string) error {
	work, out := c.String("work"), c.String("json-out")
	if work == "" && out == "" {
		return nil // the checkpoints go to a fresh temporary folder
	}
	names := append([]string(nil), p.datasets...)
	if p.datasets == nil {
		for _, b := range dataset.Benchmarks() {
			names = append(names, b.Name)
		}
	}
	trained := append([]string(nil), names...)
	for _, pr := range p.cross {
		names = append(names, pr[0], pr[1])
		trained = append(trained, pr[0])
	}
	var outputs []namedPath
	if out != "" && work != "" && absPath(out) == absPath(work) {
		return fmt.Errorf("--json-out %s is the --work folder; give the results file a name of its own (as %s)", out, filepath.Join(work, "results.json"))
	}
	if out != "" {
		// Outside the datasets first: the writability probe creates a file.
		if err := outsideDatasets("--json-out", out, fileOutput, c.String("data"), names); err != nil {
			return err
		}
		if err := fileNamed("--json-out", out, ".json"); err != nil {
			return err
		}
		if err := writableFolder("--json-out", out, authorship.JSON); err != nil {
			return err
		}
		if err := wellNamed("--json-out", out, ".json"); err != nil {
			return err
		}
		outputs = append(outputs, namedPath{role: "--json-out", path: out, kind: authorship.JSON})
	}
	if work != "" {
		if err := outsideDatasets("--work", work, folderOutput, c.String("data"), names); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, n := range trained {
			for _, k := range p.shots {
				for s := range c.Int("seeds") {
					ck := bench.CheckpointPath(work, n, k, uint64(s+1))
					if !seen[ck] { // a cross pair retrains its source's checkpoint
						seen[ck] = true
						outputs = append(outputs, namedPath{role: "a --work checkpoint", path: ck, kind: authorship.Checkpoint})
					}
				}
			}
		}
	}
	inputs := []namedPath{{role: "--weights", path: weights}, {role: "--vocab", path: c.String("vocab")}}
	for _, n := range names {
		inputs = append(inputs, splitInputs(c.String("data"), n, "valid", "test")...)
	}
	return checkOutputs(outputs, inputs)
}
