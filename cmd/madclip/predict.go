package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/infer"
	"madclip/internal/jsonpath"
	"madclip/internal/plural"
	"madclip/internal/regularfile"
	"madclip/model/clip/bpe"
)

func predictCommand() *cli.Command {
	return &cli.Command{
		Name:      "predict",
		Usage:     "score scans with a trained checkpoint and draw anomaly heatmaps",
		ArgsUsage: "IMAGE_OR_FOLDER...",
		Description: `Scores each image (PNG or JPEG; folders are read for images) from 0 (normal)
to 1 (anomalous): the anomaly map's maximum for models trained with masks,
else the detection score, divided by the number of tapped layers. The label is
"anomalous" when the score reaches --threshold. The detection head's score
(det_score) is given for every model, as the authors' test computes it.

--heatmap writes the scan with its anomaly map blended over it in the Turbo
colour map, the score and label above it and a colour bar beside it (ticks
at 0, the threshold and 1); scans under 512 px are enlarged for display.
--panel writes the figure: scan | ground truth (with --ground-truth) |
heatmap | the predicted region at the threshold as a contour over the scan.
--mask writes the predicted region itself (white where the map reaches the
threshold) at the scan's size. --raw-map writes the map (float32 in [0, 1]
at the model's input size) as .npy. Each names a file for one input and a
folder for several. --json prints one JSON object per line, --csv a table.

Examples:
  madclip predict scan.png --checkpoint brain16.safetensors --heatmap scan-heat.png
  madclip predict scans/ --checkpoint brain16.safetensors --heatmap heat/ --json > results.jsonl
  madclip predict a.png b.png --checkpoint liver.safetensors --csv --threshold 0.4
  madclip predict scan.png --checkpoint brain16.safetensors --panel fig.png --ground-truth scan_mask.png`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Usage: "a checkpoint from madclip train or madclip import", Required: true},
			&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it was trained on (default: the file recorded in the checkpoint, or one with its digest; none for a checkpoint trained on a preset)"},
			vocabFlag(),
			&cli.StringFlag{Name: "heatmap", Usage: "heatmap PNG (one input) or folder (several)"},
			&cli.StringFlag{Name: "raw-map", Usage: "raw map .npy (one input) or folder (several)"},
			&cli.StringFlag{Name: "panel", Usage: "figure PNG: scan | ground truth | heatmap | predicted region (one input) or folder (several)"},
			&cli.StringFlag{Name: "mask", Usage: "predicted region as a binary PNG at the scan's size (one input) or folder (several)"},
			&cli.StringFlag{Name: "ground-truth", Usage: "the true anomaly mask of the one input, shown by --panel"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per image and line"},
			&cli.BoolFlag{Name: "csv", Usage: "CSV with a header line"},
			thresholdFlag(),
			&cli.IntFlag{Name: "batch", Value: infer.DefaultBatch, Usage: "images per forward pass"},
			deviceFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar (results, warnings and notes still show)"},
		}, decodeFlags()...),
		Action: predictAction,
	}
}

// imageInputs expands files and folders into image paths, and says
// whether a folder was among them (its outputs then go to folders).
func imageInputs(args []string) (out []string, folder bool, err error) {
	for i, a := range args {
		if a == "" {
			return nil, false, fmt.Errorf("argument %d is empty: give an image or a folder of images", i+1)
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, false, regularfile.Explain(a, err)
		}
		if !st.IsDir() {
			if k, _ := authorship.Identify(a); k == authorship.PNG {
				// Named, it is scored; but a heatmap given by mistake for
				// its scan should not go unnoticed.
				fmt.Fprintf(os.Stderr, "madclip: note: %s is a picture madclip drew (a heatmap, panel or mask), not a scan; scoring it as given\n", oneLine(a))
			}
			out = append(out, a)
			continue
		}
		folder = true
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, false, err
		}
		n := 0
		var skipped, drawn, subfolders []string
		for _, e := range entries {
			folder := e.IsDir()
			if e.Type()&os.ModeSymlink != 0 { // a linked subfolder is a subfolder
				folder = isDir(filepath.Join(a, e.Name()))
			}
			switch {
			case !folder && dataset.IsImage(e.Name()):
				p := filepath.Join(a, e.Name())
				if k, _ := authorship.Identify(p); k == authorship.PNG {
					// A heatmap, panel or mask an earlier run wrote here is
					// no scan.
					drawn = append(drawn, e.Name())
					continue
				}
				out = append(out, p)
				n++
			case !folder && !strings.HasPrefix(e.Name(), "."):
				skipped = append(skipped, e.Name())
			case folder && !strings.HasPrefix(e.Name(), "."):
				subfolders = append(subfolders, e.Name())
			}
		}
		if len(drawn) > 0 {
			fmt.Fprintf(os.Stderr, "madclip: %s: skipping %s that madclip drew (heatmaps, panels, masks; e.g. %s)\n",
				oneLine(a), plural.Of(len(drawn), "picture"), oneLine(drawn[0]))
		}
		if n == 0 {
			return nil, false, fmt.Errorf("%s: no PNG or JPEG images in this folder (its subfolders are not searched: name them)", a)
		}
		if len(skipped) > 0 {
			// Said, not silent: a folder of .tif scans would otherwise
			// look scored.
			fmt.Fprintf(os.Stderr, "madclip: %s: skipping %s that %s not PNG or JPEG (e.g. %s)\n",
				oneLine(a), plural.Of(len(skipped), "file"), map[bool]string{true: "is", false: "are"}[len(skipped) == 1], oneLine(skipped[0]))
		}
		switch len(subfolders) {
		case 0:
		case 1:
			fmt.Fprintf(os.Stderr, "madclip: %s: not searching its subfolder %s: name it to score its images\n", oneLine(a), oneLine(subfolders[0]))
		default:
			fmt.Fprintf(os.Stderr, "madclip: %s: not searching its %d subfolders (e.g. %s): name them to score their images\n", oneLine(a), len(subfolders), oneLine(subfolders[0]))
		}
	}
	return out, folder, nil
}

type prediction struct {
	Path     jsonpath.Path `json:"path"`
	Score    float64       `json:"score"`
	Label    string        `json:"label"`
	DetScore float64       `json:"det_score"`
	Heatmap  jsonpath.Path `json:"heatmap,omitempty"`
	RawMap   jsonpath.Path `json:"raw_map,omitempty"`
	Panel    jsonpath.Path `json:"panel,omitempty"`
	Mask     jsonpath.Path `json:"mask,omitempty"`
	// Provenance: the model and threshold behind the label (--json only).
	Provenance *infer.Provenance `json:"provenance,omitempty"`
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// thresholdFlag is the flag predict and eval label with: a score, or which
// of the checkpoint's thresholds.
func thresholdFlag() cli.Flag {
	return &cli.StringFlag{Name: "threshold", Usage: "score in [0, 1] at which an image is called anomalous, or f1 (the checkpoint's F1-max threshold) or youden (its Youden point)",
		DefaultText: "f1: the checkpoint's, else 0.5"}
}

// The checkpoint's thresholds, as --threshold names them.
const (
	thresholdF1     = "f1"
	thresholdYouden = "youden"
)

// checkThresholdFlag refuses, before any work, a --threshold that is
// neither a score in [0, 1] (not NaN) nor the name of one of the
// checkpoint's thresholds.
func checkThresholdFlag(c *cli.Context) error {
	v := c.String("threshold")
	if !c.IsSet("threshold") || v == thresholdF1 || v == thresholdYouden {
		return nil
	}
	th, err := strconv.ParseFloat(v, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("--threshold %s: give a score in [0, 1], f1 or youden (see madclip %s --help)", oneLine(v), c.Command.Name)
	}
	if math.IsNaN(th) || th < 0 || th > 1 {
		return fmt.Errorf("--threshold %s: scores run from 0 to 1; give a threshold in [0, 1]", oneLine(v))
	}
	return nil
}

// labelThreshold is the threshold labels use, with its origin: the score
// --threshold gives, or the checkpoint's F1-max threshold (0.5 when it
// chose none) or its Youden point.
func labelThreshold(c *cli.Context, p *infer.Predictor) (float64, string, error) {
	switch v := c.String("threshold"); {
	case !c.IsSet("threshold") || v == thresholdF1:
		th, origin := p.Threshold()
		return th, origin, nil
	case v == thresholdYouden:
		m := p.Meta
		if m.ThresholdYouden == 0 || m.Calibration == nil {
			return 0, "", fmt.Errorf("--threshold youden: %s records no Youden point (%s)", c.String("checkpoint"), m.ThresholdOrigin())
		}
		return m.ThresholdYouden, fmt.Sprintf("Youden point on %d normal and %d abnormal held-out valid images", m.Calibration.Normal, m.Calibration.Abnormal), nil
	default:
		// Checked by checkThresholdFlag; + 0: -0 is 0, printed so.
		th, _ := strconv.ParseFloat(v, 64)
		return th + 0, "given with --threshold", nil
	}
}

// uncalibrated reports whether the labels use the 0.5 a checkpoint falls
// back to when it had no held-out images to choose a threshold on.
func uncalibrated(c *cli.Context, p *infer.Predictor) bool {
	return (!c.IsSet("threshold") || c.String("threshold") == thresholdF1) && p.Meta.Threshold == 0
}

// predictOutputs are the per-image files predict writes, by flag; a nil
// list for a flag not given.
type predictOutputs struct {
	heatmap, rawMap, panel, mask []string
	groundTruth                  string
	made                         madeFolders // output folders made before the work
}

func (o predictOutputs) keepOriginals() bool {
	return o.heatmap != nil || o.panel != nil || o.mask != nil
}

func predictAction(c *cli.Context) (err error) {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give images or folders (see madclip predict --help)")
	}
	if c.Bool("json") && c.Bool("csv") {
		return fmt.Errorf("predict: choose --json or --csv")
	}
	if err := inRange(c, map[string][2]int{"batch": batchRange}); err != nil {
		return err
	}
	if err := checkThresholdFlag(c); err != nil {
		return err
	}
	paths, folder, err := imageInputs(c.Args().Slice())
	if err != nil {
		return err
	}
	outs, err := planPredictOutputs(c, paths, folder)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			outs.made.removeEmpty()
		}
	}()
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	pr := newPredictionPrinter(c)
	var bar *countBar
	if len(paths) > 1 && !c.Bool("quiet") {
		bar = newCountBar("predict", len(paths))
	}
	// Ctrl-C, SIGTERM or SIGHUP stops after the image in hand: its outputs
	// are complete, and every result so far is printed.
	ctx, caught, stop := notifySignals(c.Context, os.Exit, signalGrace, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	run := &predictRun{c: c, paths: paths, outs: outs, pr: pr, bar: bar, flat: &flatNotes{}}
	err = run.score(ctx, tk)
	if flushErr := pr.flush(); err == nil {
		err = flushErr
	}
	run.flat.summary()
	if run.scored > 0 && !c.Bool("quiet") && !c.Bool("json") && !c.Bool("csv") { // JSON and CSV name each file
		for _, line := range outs.where(c) {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	if s := caught(); s != nil && errors.Is(err, context.Canceled) {
		return signalError{s, fmt.Errorf("stopped by %s after %d of %d images", signalName(s), run.scored, len(paths))}
	}
	if err != nil {
		return err
	}
	return unreadable(run.bad, len(paths))
}

// predictRun is one predict over its inputs, and what it has done.
type predictRun struct {
	c      *cli.Context
	paths  []string
	outs   predictOutputs
	pr     *predictionPrinter
	bar    *countBar
	flat   *flatNotes
	scored int     // the rows printed
	bad    []error // the images skipped, unreadable
}

// score scores the inputs in batches, writes their outputs and prints
// their rows, until all are done or ctx ends.
func (r *predictRun) score(ctx context.Context, tk *bpe.Tokenizer) error {
	c, outs, pr, bar := r.c, r.outs, r.pr, r.bar
	resultsOnTerminal := isTerminal(os.Stdout) // sharing the bar's screen
	// The progress counts images whose outputs are written and row
	// printed, and skipped ones.
	opts := infer.StreamOptions{Batch: c.Int("batch"), KeepOriginal: outs.keepOriginals(), Limits: decodeLimits(c), Context: ctx,
		Progress: func(done, _ int) {
			if done == 0 {
				bar.Set(0)
			}
		}}
	if len(r.paths) > 1 {
		opts.Skip = func(d dataset.Decoded) {
			// One unreadable scan does not cost the others their results.
			r.bad = append(r.bad, d.Err)
			bar.Clear()
			fmt.Fprintf(os.Stderr, "madclip: skipping %s\n", oneLine(d.Err.Error()))
			bar.Advance()
		}
	}
	// Pictures are drawn and written beside the model, rows printed in
	// the inputs' order.
	pool := newFigurePool(runtime.GOMAXPROCS(0), func(row prediction) error {
		r.scored++
		if resultsOnTerminal {
			bar.Clear()
		}
		if err := pr.print(row); err != nil {
			return err
		}
		bar.Advance()
		return nil
	})
	err := onCompute(func() error {
		p, err := openPredictor(c, tk)
		if err != nil {
			return err
		}
		defer p.Close()
		if err := pr.setThreshold(c, p); err != nil {
			return err
		}
		items := make([]dataset.Sample, len(r.paths))
		for i, path := range r.paths {
			items[i].Path = path
		}
		return p.Stream(items, opts, func(d dataset.Decoded, res infer.Result) error {
			r.flat.check(d, p.Size, bar)
			var size int64
			if d.Orig != nil {
				size = int64(len(d.Orig.Pix))
			}
			return pool.submit(size, func() (prediction, error) { return outs.write(d, res, p.Size, pr.threshold, pr.uncalibrated) })
		})
	})
	// A failed write or print stopped the stream: its error is the cause.
	if poolErr := pool.close(); poolErr != nil {
		err = poolErr
	}
	return err
}

// unreadable is the error that ends a run in which the images whose errors
// are bad (of n) were skipped; nil when none was.
func unreadable(bad []error, n int) error {
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("1 of %d images could not be read: %v", n, bad[0])
	}
	return fmt.Errorf("%d of %d images could not be read (first: %v)", len(bad), n, bad[0])
}

// planPredictOutputs names every per-image output before any work, and
// refuses outputs that are inputs or cannot be written.
func planPredictOutputs(c *cli.Context, paths []string, folder bool) (predictOutputs, error) {
	var o predictOutputs
	o.groundTruth = c.String("ground-truth")
	if o.groundTruth != "" && len(paths) != 1 {
		return o, fmt.Errorf("predict: --ground-truth is the mask of one input; %d images given", len(paths))
	}
	if o.groundTruth != "" && c.String("panel") == "" {
		return o, fmt.Errorf("predict: --ground-truth is shown by --panel; give --panel too")
	}
	kinds := []struct {
		flag, suffix string
		dst          *[]string
	}{
		{"heatmap", "_heatmap.png", &o.heatmap}, {"raw-map", "_map.npy", &o.rawMap},
		{"panel", "_panel.png", &o.panel}, {"mask", "_mask.png", &o.mask},
	}
	var outputs, named []namedPath // named: the outputs given as one file
	var badName error              // a named output whose extension belies it
	for _, k := range kinds {
		dest := c.String(k.flag)
		names, err := perImageOutputs(paths, dest, k.suffix, folder)
		if err != nil {
			return o, fmt.Errorf("--%s: %w", k.flag, err)
		}
		*k.dst = names
		kind := authorship.PNG
		if strings.HasSuffix(k.suffix, ".npy") {
			kind = authorship.NPY
		}
		for _, n := range names {
			outputs = append(outputs, namedPath{role: "--" + k.flag, path: n, kind: kind})
		}
		if len(names) == 1 && names[0] == dest {
			// A file named by the user: its extension must say what it
			// holds, so that a PNG is not saved as scan.jpg, nor a map as
			// an image.
			if want := filepath.Ext(k.suffix); !strings.EqualFold(filepath.Ext(dest), want) && badName == nil {
				badName = fmt.Errorf("predict: --%s %s: it writes a %s file; give it a %s name", k.flag, dest, strings.TrimPrefix(want, "."), want)
			}
			named = append(named, namedPath{role: "--" + k.flag, path: dest, kind: kind})
		}
	}
	inputs, _ := checkpointInputs(c)
	inputs = append(inputs, namedPath{role: "--ground-truth", path: o.groundTruth})
	for _, p := range paths {
		inputs = append(inputs, namedPath{role: "image", path: p})
	}
	if err := checkOutputs(outputs, inputs); err != nil {
		return o, err
	}
	if badName != nil {
		return o, badName
	}
	if err := o.made.makeOutputFolders(outputs, named); err != nil {
		o.made.removeEmpty()
		return o, err
	}
	return o, nil
}

// where says where the pictures and maps went ("heatmaps written under
// heat/"), for the plain listing, which names only the scans.
func (o predictOutputs) where(c *cli.Context) []string {
	var lines []string
	for _, k := range []struct {
		flag, one, many string
		names           []string
	}{
		{"heatmap", "heatmap", "heatmaps", o.heatmap}, {"raw-map", "raw map", "raw maps", o.rawMap},
		{"panel", "figure", "figures", o.panel}, {"mask", "predicted region", "predicted regions", o.mask},
	} {
		switch {
		case len(k.names) == 1:
			lines = append(lines, fmt.Sprintf("%s written to %s", k.one, oneLine(k.names[0])))
		case len(k.names) > 0:
			lines = append(lines, fmt.Sprintf("%s written under %s", k.many, oneLine(c.String(k.flag))))
		}
	}
	return lines
}

// checkpointInputs names the files a command using --checkpoint reads
// besides its images: the checkpoint, the weights (given, or the file it
// records) and the vocab. The checkpoint's description comes with them
// (zero when it cannot be read; opening it reports why).
func checkpointInputs(c *cli.Context) ([]namedPath, checkpoint.Meta) {
	ck := c.String("checkpoint")
	inputs := []namedPath{{role: "--checkpoint", path: ck}, {role: "--weights", path: c.String("weights")}, {role: "--vocab", path: c.String("vocab")}}
	m, err := checkpoint.ReadMeta(ck)
	if err == nil {
		inputs = append(inputs, recordedWeights(ck, m)...)
	}
	return inputs, m
}

// recordedWeights names as inputs the weights a checkpoint records and, if
// they have moved, the file found in their place by digest.
func recordedWeights(ck string, m checkpoint.Meta) []namedPath {
	in := []namedPath{{role: "weights", path: string(m.Backbone.File)}}
	if found, err := m.WeightsFile(ck); err == nil && found != "" {
		in = append(in, namedPath{role: "weights", path: found})
	}
	return in
}

// drawPNG draws a figure and writes it to path.
func drawPNG(path string, draw func() (*image.RGBA, error)) error {
	fig, err := draw()
	if err != nil {
		return err
	}
	return writePNG(path, fig)
}

// maxFlatNotes is how many flat-colour images predict names one by one.
const maxFlatNotes = 5

// flatNotes says which scored images are one flat colour (a blank or
// failed export still gets a score): the first few by name, then how many
// more, so that a folder of blanks is not a page of notes.
type flatNotes struct{ n int }

func (f *flatNotes) check(d dataset.Decoded, size int, bar *countBar) {
	rgb, ok := flatColour(d.Image.Pixels)
	if !ok {
		return
	}
	if f.n++; f.n <= maxFlatNotes {
		bar.Clear()
		fmt.Fprintf(os.Stderr, "madclip: note: %s is one flat colour (RGB %d, %d, %d) at the model's %d px: its score says nothing about a scan\n",
			oneLine(d.Sample.Path), rgb[0], rgb[1], rgb[2], size)
	}
}

func (f *flatNotes) summary() {
	if f.n > maxFlatNotes {
		fmt.Fprintf(os.Stderr, "madclip: note: %s of one flat colour, not named\n", plural.Of(f.n-maxFlatNotes, "more image"))
	}
}

// write writes the outputs of one image and returns its row, which names
// them.
func (o predictOutputs) write(d dataset.Decoded, r infer.Result, size int, th float64, uncalibrated bool) (prediction, error) {
	pr := prediction{Path: jsonpath.Path(d.Sample.Path), Score: r.Score, DetScore: r.DetScore, Label: infer.Label(r.Score, th)}
	ov := infer.Overlay{Score: r.Score, Threshold: th, Label: pr.Label, Uncalibrated: uncalibrated}
	named := ov
	named.Name = filepath.Base(d.Sample.Path) // a panel shown on its own says which scan it is
	// Every figure is checked before any is drawn: one that cannot be
	// leaves none of this image's outputs behind.
	if o.heatmap != nil {
		if err := infer.HeatmapFits(d.Orig, ov); err != nil {
			return pr, fmt.Errorf("%s: %w; give no --heatmap for it", oneLine(d.Sample.Path), err)
		}
	}
	var gt []bool
	if o.panel != nil {
		if o.groundTruth != "" {
			var err error
			var faint bool
			if gt, faint, err = infer.LoadTruth(o.groundTruth, d.Sample.Path, d.Orig.W, d.Orig.H); err != nil {
				return pr, fmt.Errorf("--ground-truth %w", err)
			}
			if faint {
				fmt.Fprintf(os.Stderr, "madclip: note: --ground-truth %s marks nothing: its pixels are all below 128 but not all 0 (a mask stored as 0/1 rather than 0/255 reads so)\n", oneLine(o.groundTruth))
			}
		}
		if err := infer.PanelFits(d.Orig, o.groundTruth != "", named); err != nil {
			return pr, fmt.Errorf("%s: %w; give no --panel for it", oneLine(d.Sample.Path), err)
		}
	}
	if o.heatmap != nil {
		pr.Heatmap = jsonpath.Path(o.heatmap[d.Index])
		if err := drawPNG(o.heatmap[d.Index], func() (*image.RGBA, error) { return infer.Heatmap(d.Orig, r.Map, size, ov) }); err != nil {
			return pr, err
		}
	}
	if o.panel != nil {
		pr.Panel = jsonpath.Path(o.panel[d.Index])
		if err := drawPNG(o.panel[d.Index], func() (*image.RGBA, error) { return infer.Panel(d.Orig, gt, r.Map, size, named) }); err != nil {
			return pr, err
		}
	}
	if o.mask != nil {
		pr.Mask = jsonpath.Path(o.mask[d.Index])
		if err := writePNG(o.mask[d.Index], infer.PredictedMask(d.Orig, r.Map, size, th)); err != nil {
			return pr, err
		}
	}
	if o.rawMap != nil {
		pr.RawMap = jsonpath.Path(o.rawMap[d.Index])
		if err := infer.WriteNPY(o.rawMap[d.Index], r.Map, size, size); err != nil {
			return pr, err
		}
	}
	return pr, nil
}

// predictionPrinter prints one row per image: a line, a JSON object (with
// the provenance) or a CSV row; every write is checked.
type predictionPrinter struct {
	w         io.Writer
	json      bool
	csv       *csv.Writer
	quiet     bool
	threshold float64
	origin    string // where threshold comes from, as reports say it
	// uncalibrated: the checkpoint's fallback 0.5, chosen on no held-out
	// images; pictures say so.
	uncalibrated bool
	prov         *infer.Provenance
	headed       bool // the CSV header is written
}

func newPredictionPrinter(c *cli.Context) *predictionPrinter {
	p := &predictionPrinter{w: c.App.Writer, json: c.Bool("json"), quiet: c.Bool("quiet")}
	if c.Bool("csv") {
		p.csv = csv.NewWriter(p.w)
	}
	return p
}

// setThreshold takes --threshold or the checkpoint's (saying so when it is
// uncalibrated), and the provenance that JSON rows carry.
func (p *predictionPrinter) setThreshold(c *cli.Context, pred *infer.Predictor) error {
	th, origin, err := labelThreshold(c, pred)
	if err != nil {
		return err
	}
	p.threshold, p.origin = th, origin
	p.uncalibrated = uncalibrated(c, pred)
	if p.uncalibrated { // a warning: shown even with --quiet
		fmt.Fprintf(os.Stderr, "madclip: note: this checkpoint's threshold is %s; scores are unaffected\n", pred.Meta.ThresholdOrigin())
	}
	if p.json {
		pv, err := infer.NewProvenance(pred, c.String("checkpoint"), version, th, origin)
		if err != nil {
			return err
		}
		p.prov = &pv
	}
	return nil
}

func (p *predictionPrinter) print(pr prediction) error {
	switch {
	case p.json:
		pr.Provenance = p.prov
		b, err := marshalJSON(pr, "")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(p.w, string(b))
		return err
	case p.csv != nil:
		// Full precision, as JSON writes them: a score a hair from the
		// threshold must not print equal to it.
		num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		p.header()
		p.csv.Write(csvSafe(string(pr.Path), num(pr.Score), pr.Label, num(pr.DetScore), string(pr.Heatmap), string(pr.RawMap), string(pr.Panel), string(pr.Mask), num(p.threshold), p.origin))
		p.csv.Flush()
		return p.csv.Error()
	}
	_, err := fmt.Fprintf(p.w, "%-10s %.*f  %s\n", pr.Label, infer.Decimals(pr.Score, p.threshold, 4), pr.Score, oneLine(string(pr.Path)))
	return err
}

// header writes the CSV's header once, with the first row: a run that
// scores nothing (a refused checkpoint, an unreadable scan) leaves no
// header-only file behind.
func (p *predictionPrinter) header() {
	if !p.headed {
		p.headed = true
		p.csv.Write([]string{"path", "score", "label", "det_score", "heatmap", "raw_map", "panel", "mask", "threshold", "threshold_origin"})
	}
}

func (p *predictionPrinter) flush() error {
	if p.csv == nil {
		return nil
	}
	p.csv.Flush()
	return p.csv.Error()
}

// makeOutputFolders creates, before any work, the folders that per-image
// outputs go to (they mirror the inputs' folders), recording them in m. An output named as one
// file must be in an existing folder: a mistyped folder is not created.
func (m *madeFolders) makeOutputFolders(outputs, named []namedPath) error {
	for _, o := range named {
		if dir := atomicfile.Folder(o.path); !isDir(dir) {
			return fmt.Errorf("%s %s: its folder %s does not exist", o.role, o.path, dir)
		}
	}
	probed := map[string]bool{}
	for _, o := range outputs {
		dir := atomicfile.Folder(o.path)
		if err := m.mkdirAll(dir); err != nil {
			// A link to nowhere in the way says only "file exists".
			for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
				if t, lerr := os.Readlink(d); lerr == nil && !isDir(d) {
					return fmt.Errorf("%s %s: output folder %s is a symbolic link to %s, which is no folder", o.role, o.path, d, t)
				}
			}
			return fmt.Errorf("%s %s: output folder %s: %w", o.role, o.path, dir, err)
		}
		// Each folder takes files, before any image is scored.
		if !probed[dir] {
			if err := canCreateIn(o.role+" "+o.path, dir); err != nil {
				return err
			}
			probed[dir] = true
		}
	}
	return nil
}

// csvSafe neutralises cells that a spreadsheet would run as a formula (a
// leading =, +, -, @, tab or carriage return) with a leading apostrophe,
// as OWASP advises; numbers keep their sign.
func csvSafe(cells ...string) []string {
	for i, v := range cells {
		if v == "" || !strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			continue
		}
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			continue
		}
		cells[i] = "'" + v
	}
	return cells
}

// writePNG writes an image as PNG, atomically.
func writePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return authorship.EncodePNG(w, img) })
}

// openPredictor loads --checkpoint (with --weights) on --device, with a
// note (shown even with --quiet) when the weights were found in place of
// the recorded file, or when the model ranked its held-out images below
// chance. It runs on the compute thread.
func openPredictor(c *cli.Context, tk *bpe.Tokenizer) (*infer.Predictor, error) {
	dev, err := deviceFromFlag(c)
	if err != nil {
		return nil, err
	}
	// Its description first: a missing or wrong file is named by its flag.
	if _, err := checkpoint.ReadMeta(c.String("checkpoint")); err != nil {
		return nil, fmt.Errorf("--checkpoint %w", err)
	}
	p, err := infer.Open(c.String("checkpoint"), c.String("weights"), tk, dev)
	if err != nil {
		return nil, err
	}
	m := p.Meta
	if rec := string(m.Backbone.File); c.String("weights") == "" && p.WeightsFile != "" && p.WeightsFile != rec {
		fmt.Fprintf(os.Stderr, "madclip: note: the checkpoint's weights file %s is %s; using %s, which holds the same tensors (digest %s…)\n",
			oneLine(rec), recordedWeightsState(rec), oneLine(p.WeightsFile), m.Backbone.Digest[:min(12, len(m.Backbone.Digest))])
	}
	if cal := m.Calibration; cal != nil && cal.AUROC < 0.5 {
		fmt.Fprintf(os.Stderr, "madclip: note: this model ranked its %d normal and %d abnormal held-out valid images below chance when trained (image AUROC %.2f%%): its scores and labels are not to be trusted\n",
			cal.Normal, cal.Abnormal, 100*cal.AUROC)
	}
	return p, nil
}

// flatColour reports whether an image ([3, H, W] in [0, 1]) is one colour
// throughout, and which: a blank or failed export rather than a scan.
func flatColour(pixels []float32) ([3]int, bool) {
	var rgb [3]int
	n := len(pixels) / 3
	if n == 0 {
		return rgb, false
	}
	for c := range 3 {
		ch := pixels[c*n : (c+1)*n]
		for _, v := range ch[1:] {
			if v != ch[0] {
				return rgb, false
			}
		}
		rgb[c] = int(math.Round(float64(ch[0]) * 255))
	}
	return rgb, true
}
