package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/authors"
	"madclip/authorship"
	"madclip/checkpoint"
	"madclip/infer"
	"madclip/internal/shellquote"
	"madclip/model"
	"madclip/model/clip"
	"madclip/torch"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "convert a checkpoint of another implementation into a madclip checkpoint",
		Description: `Converts checkpoints of other implementations of MadCLIP. Today: the authors'
(madclip import authors --help).

Examples:
  madclip import authors ckpt/Brain.pth --dataset Brain --weights ViT-L-14-336px.safetensors --out brain16.safetensors`,
		Subcommands: []*cli.Command{{
			Name:      "authors",
			Usage:     "convert a checkpoint of the MadCLIP authors' code (ckpt/{Obj}.pth)",
			ArgsUsage: "IN.pth",
			Description: `Reads a checkpoint written by the authors' train.py (github.com/mahshid1998/MadCLIP)
and writes a madclip checkpoint that predict, eval and export use. The .pth is
read without running any of its pickle. Its copy of CLIP's text encoder is
checked against --weights: a model only means something on the CLIP it was
trained on.

Their code's settings are the defaults: tapped layers 6, 12, 18, 24, 240 px,
exact GELU, no causal mask on the prompts, no mean/std. --layers and
--image-size give other ones (their --features_list and --img_size).

Their file holds no label threshold, seed or list of shots: the checkpoint
records none of them unless --threshold gives one (madclip export authors
prints the command that reads its file back with the model's own threshold).

Examples:
  madclip import authors ckpt/Brain.pth --dataset Brain --weights ViT-L-14-336px.safetensors --out brain16.safetensors
  madclip import authors knee.pth --dataset Knee --object "knee MRI" --masks=false --out knee.safetensors`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dataset", Usage: "the dataset it was trained on (their --obj)", Required: true},
				&cli.StringFlag{Name: "out", Usage: "the madclip checkpoint to write", Required: true},
				&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it ran on (default: the largest known model found)"},
				&cli.StringFlag{Name: "preset", Usage: "a random CLIP preset instead of weights (tests)"},
				&cli.StringFlag{Name: "object", Usage: "the object word of its prompts (default: the dataset's; required for a dataset of your own)"},
				&cli.IntSliceFlag{Name: "layers", Usage: "tapped ViT blocks", DefaultText: "four evenly spaced blocks ending at the last: 6,12,18,24 for ViT-L, 3,6,9,12 for ViT-B, 1,2,3,4 for tiny"},
				&cli.IntFlag{Name: "image-size", Value: model.PaperImageSize, Usage: "input resolution"},
				&cli.BoolFlag{Name: "masks", Usage: "whether it scores by its anomaly map (default: as the benchmark dataset)"},
				&cli.IntFlag{Name: "shots", Value: authors.ReleasedShots, Usage: "shots per class it was trained on (recorded)"},
				&cli.Float64Flag{Name: "threshold", Usage: "the label threshold to record, in (0, 1]; their file holds none", DefaultText: "none, so predict labels at an uncalibrated 0.5"},
				vocabFlag(),
			},
			Action: importAuthorsAction,
		}},
	}
}

func importAuthorsAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("import authors: give one IN.pth (see madclip import authors --help)")
	}
	if c.Args().First() == "" {
		return fmt.Errorf("import authors: the IN.pth name is empty")
	}
	if err := inRange(c, map[string][2]int{"image-size": imageSizeRange, "shots": shotsRange}); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if err := oneBackbone(c); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if err := checkLayers(c.IntSlice("layers")); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if th := c.Float64("threshold"); c.IsSet("threshold") && !(th > 0 && th <= 1) {
		if th == 0 { // a checkpoint's 0 means "none chosen"
			return fmt.Errorf("import authors: --threshold 0 would record no threshold; leave it out for that (predict then labels at an uncalibrated 0.5), or give one in (0, 1]")
		}
		return fmt.Errorf("import authors: --threshold %v: give a threshold in (0, 1]", th)
	}
	in, out := c.Args().First(), c.String("out")
	if err := distinctPaths(map[string]string{"IN.pth": in, "--out": out, "--weights": c.String("weights")}); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if err := checkOutputs([]namedPath{{role: "--out", path: out, kind: authorship.Checkpoint}}, []namedPath{{role: "IN.pth", path: in}, {role: "--weights", path: c.String("weights")}}); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if err := wellNamed("--out", out, ".safetensors"); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	if err := writableFolder("--out", out, authorship.Checkpoint); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	o := authors.ImportOptions{
		Dataset: c.String("dataset"), Object: c.String("object"), Layers: c.IntSlice("layers"),
		ImageSize: c.Int("image-size"), Shots: c.Int("shots"), Threshold: c.Float64("threshold"), Preset: c.String("preset"), BackboneSeed: checkpoint.DefaultBackboneSeed, Device: torch.CPU,
	}
	if c.IsSet("masks") {
		m := c.Bool("masks")
		o.Masks = &m
	}
	if o.Preset == "" {
		var err error
		if o.Weights, err = findWeights(c.String("weights")); err != nil {
			return err
		}
	}
	if err := checkLayersFit(o.Layers, o.Preset, o.Weights); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	if err := checkObjectFlag(c, tk); err != nil {
		return fmt.Errorf("import authors: %w", err)
	}
	return onCompute(func() error {
		meta, err := authors.Import(in, out, o, tk)
		if err != nil {
			return err
		}
		prompts := "learned prompts"
		if meta.Model.Handcrafted {
			prompts = "hand-crafted prompts"
		}
		fmt.Fprintf(c.App.Writer, "wrote %s: %s, object %q, layers %s, %d px, %s, scored by its %s\n",
			oneLine(out), oneLine(meta.Dataset), meta.Model.Object, joinInts(meta.Model.Layers, ","), meta.Model.ImageSize, prompts, infer.ScoreKind(meta.Masks))
		return nil
	})
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a madclip checkpoint in another implementation's format",
		Description: `Writes madclip checkpoints for other implementations of MadCLIP. Today: the
authors' (madclip export authors --help).

Examples:
  mkdir -p mine && madclip export authors brain16.safetensors mine/Brain.pth`,
		Subcommands: []*cli.Command{{
			Name:      "authors",
			Usage:     "write the dict the MadCLIP authors' test.py loads ({Obj}.pth)",
			ArgsUsage: "CHECKPOINT OUT.pth",
			Description: `Writes a madclip checkpoint as the authors' train.py saves theirs (a torch.save
dict of the adapters' and prompt makers' state dicts, the latter with a copy of
CLIP's text encoder taken from --weights), so that their test.py evaluates it.
Models trained with an option their code lacks (--quick-gelu, --causal-prompts,
--mean-std, --generic-object, --shared-adapters, --common-head, --no-subtraction)
are refused.

OUT.pth's folder must exist; name the file {Obj}.pth, as their test.py looks
for it.

Examples:
  mkdir -p mine && madclip export authors brain16.safetensors mine/Brain.pth
  # then, in their repository, with mine/ copied beside test.py:
  python test.py --obj Brain --save_path ./mine/`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "weights", Usage: "the CLIP weights the checkpoint was trained on (default: the file it records)"},
				vocabFlag(),
			},
			Action: exportAuthorsAction,
		}},
	}
}

func exportAuthorsAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("export authors: give CHECKPOINT and OUT.pth (see madclip export authors --help)")
	}
	ck, out := c.Args().Get(0), c.Args().Get(1)
	for _, a := range []struct{ role, name string }{{"CHECKPOINT", ck}, {"OUT.pth", out}} {
		if a.name == "" {
			return fmt.Errorf("export authors: the %s name is empty", a.role)
		}
	}
	out, err := kernelPath(out)
	if err != nil {
		return fmt.Errorf("export authors: OUT.pth %w", err)
	}
	inputs := []namedPath{{role: "CHECKPOINT", path: ck}, {role: "--weights", path: c.String("weights")}, {role: "--vocab", path: c.String("vocab")}}
	if meta, err := checkpoint.ReadMeta(ck); err == nil {
		inputs = append(inputs, recordedWeights(ck, meta)...)
		if meta.Training != nil {
			if err := outsideDatasets("OUT.pth", out, fileOutput, string(meta.Training.Data), []string{meta.Dataset}); err != nil {
				return fmt.Errorf("export authors: %w", err)
			}
		}
	}
	if err := fileNamed("OUT.pth", out, ".pth"); err != nil {
		return fmt.Errorf("export authors: %w", err)
	}
	if err := imageNamed("OUT.pth", out, ".pth"); err != nil {
		return fmt.Errorf("export authors: %w", err)
	}
	if err := checkOutputs([]namedPath{{role: "OUT.pth", path: out, kind: authorship.Archive}}, inputs); err != nil {
		return fmt.Errorf("export authors: %w", err) // an input named: the first thing to say
	}
	if err := formatNamed("OUT.pth", out, ".pth"); err != nil {
		return fmt.Errorf("export authors: %w", err)
	}
	if err := writableFolder("OUT.pth", out, authorship.Archive); err != nil {
		return fmt.Errorf("export authors: %w", err)
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	return onCompute(func() error {
		meta, err := authors.Export(ck, c.String("weights"), out, tk)
		if err != nil {
			return err
		}
		fmt.Fprint(c.App.Writer, exportHint(out, meta))
		return nil
	})
}

// exportHint says what was written and how the authors' test.py evaluates
// it; their code always runs OpenAI's ViT-L/14-336, so a file made from any
// other backbone is for madclip import authors only.
func exportHint(out string, meta checkpoint.Meta) string {
	vitL, _ := clip.Preset("ViT-L/14-336")
	if b := meta.Backbone; b.Preset != "" || b.Config != vitL {
		return fmt.Sprintf("wrote %s (trained on %s; the authors' code runs OpenAI's ViT-L/14-336 and cannot use it, madclip import authors can)\n", oneLine(out), oneLine(b.String())) + readBackHint(out, meta)
	}
	layers := strings.Trim(fmt.Sprint(meta.Model.Layers), "[]")
	// Their test.py loads {save_path}/{obj}.pth.
	s := fmt.Sprintf("wrote %s; in the authors' code: python test.py --obj %s --save_path %s --img_size %d --features_list %s\n",
		oneLine(out), meta.Dataset, shellquote.Path(filepath.Dir(out)+string(filepath.Separator)), meta.Model.ImageSize, layers)
	if want := meta.Dataset + ".pth"; filepath.Base(out) != want {
		s += fmt.Sprintf("(their test.py looks for %s in that folder: rename the file to it)\n", oneLine(want))
	}
	if meta.Model.Handcrafted {
		s += "(hand-crafted prompts: add --text_mood fix)\n"
	}
	return s + readBackHint(out, meta)
}

// readBackHint gives the import command that turns the exported file back
// into this model: the .pth does not hold the image size, the tapped
// layers' numbers, the shots, the object word, whether it scores by its
// map or the label threshold, and import's defaults are the authors'
// settings, not this model's.
func readBackHint(out string, meta checkpoint.Meta) string {
	b := meta.Backbone
	var backbone string
	switch {
	case b.Preset != "" && b.Seed != 1:
		return "" // import builds random presets with seed 1 only
	case b.Preset != "":
		backbone = "--preset " + shellquote.Quote(b.Preset)
	default:
		backbone = "--weights " + shellquote.Path(string(b.File))
	}
	layers := strings.Trim(strings.ReplaceAll(fmt.Sprint(meta.Model.Layers), " ", ","), "[]")
	back := strings.TrimSuffix(out, filepath.Ext(out)) + "-imported.safetensors"
	threshold := ""
	if meta.Threshold != 0 {
		threshold = " --threshold " + strconv.FormatFloat(meta.Threshold, 'g', -1, 64)
	}
	return fmt.Sprintf("read back with: madclip import authors %s --dataset %s %s --object %s --layers %s --image-size %d --shots %d --masks=%v%s --out %s\n",
		shellquote.Path(out), shellquote.Quote(meta.Dataset), backbone, shellquote.Quote(meta.Model.Object), layers, meta.Model.ImageSize, meta.Shots, meta.Masks, threshold, shellquote.Path(back))
}

// joinInts writes ns separated by sep: "1,2,3" as the flags that take
// them are given, "1, 2, 3" in prose.
func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
