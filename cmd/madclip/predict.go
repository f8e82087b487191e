package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/dataset"
	"madclip/infer"
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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Usage: "a checkpoint from madclip train", Required: true},
			&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it was trained on (default: the file recorded in the checkpoint; none for --preset tiny)"},
			vocabFlag(),
			&cli.StringFlag{Name: "heatmap", Usage: "heatmap PNG (one input) or folder (several)"},
			&cli.StringFlag{Name: "raw-map", Usage: "raw map .npy (one input) or folder (several)"},
			&cli.StringFlag{Name: "panel", Usage: "figure PNG: scan | ground truth | heatmap | predicted region (one input) or folder (several)"},
			&cli.StringFlag{Name: "mask", Usage: "predicted region as a binary PNG at the scan's size (one input) or folder (several)"},
			&cli.StringFlag{Name: "ground-truth", Usage: "the true anomaly mask of the one input, shown by --panel"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per image and line"},
			&cli.BoolFlag{Name: "csv", Usage: "CSV with a header line"},
			&cli.Float64Flag{Name: "threshold", Usage: "score in [0, 1] at which an image is called anomalous", DefaultText: "the checkpoint's, else 0.5"},
			&cli.IntFlag{Name: "batch", Value: 16, Usage: "images per forward pass"},
			deviceFlag(),
			maxPixelsFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: predictAction,
	}
}

// imageInputs expands files and folders into image paths.
func imageInputs(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		n := 0
		var skipped []string
		for _, e := range entries {
			switch {
			case !e.IsDir() && dataset.IsImage(e.Name()):
				out = append(out, filepath.Join(a, e.Name()))
				n++
			case !e.IsDir() && !strings.HasPrefix(e.Name(), "."):
				skipped = append(skipped, e.Name())
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no PNG or JPEG images in this folder", a)
		}
		if len(skipped) > 0 {
			// Said, not silent: a folder of .tif scans would otherwise
			// look scored.
			fmt.Fprintf(os.Stderr, "madclip: %s: skipping %s that %s not PNG or JPEG (e.g. %s)\n",
				a, plural(len(skipped), "file"), map[bool]string{true: "is", false: "are"}[len(skipped) == 1], skipped[0])
		}
	}
	return out, nil
}

type prediction struct {
	Path     string  `json:"path"`
	Score    float64 `json:"score"`
	Label    string  `json:"label"`
	DetScore float64 `json:"det_score"`
	Heatmap  string  `json:"heatmap,omitempty"`
	RawMap   string  `json:"raw_map,omitempty"`
	Panel    string  `json:"panel,omitempty"`
	Mask     string  `json:"mask,omitempty"`
	// Provenance: the model and threshold behind the label (--json only).
	Provenance *infer.Provenance `json:"provenance,omitempty"`
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// predictThreshold is --threshold when given (a number in [0, 1]), else
// the checkpoint's (0.5 when it chose none).
func predictThreshold(c *cli.Context, fromCheckpoint float64) (float64, error) {
	if !c.IsSet("threshold") {
		if fromCheckpoint == 0 {
			return 0.5, nil
		}
		return fromCheckpoint, nil
	}
	th := c.Float64("threshold")
	if math.IsNaN(th) || th < 0 || th > 1 {
		return 0, fmt.Errorf("--threshold %v: scores run from 0 to 1; give a threshold in [0, 1]", th)
	}
	return th, nil
}

func predictAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give images or folders (see madclip predict --help)")
	}
	if c.Bool("json") && c.Bool("csv") {
		return fmt.Errorf("predict: choose --json or --csv")
	}
	if err := inRange(c, map[string][2]int{"batch": {1, 4096}}); err != nil {
		return err
	}
	if c.IsSet("threshold") {
		if _, err := predictThreshold(c, 0); err != nil {
			return err
		}
	}
	paths, err := imageInputs(c.Args().Slice())
	if err != nil {
		return err
	}
	gtPath := c.String("ground-truth")
	if gtPath != "" && len(paths) != 1 {
		return fmt.Errorf("predict: --ground-truth is the mask of one input; %d images given", len(paths))
	}
	if gtPath != "" && c.String("panel") == "" {
		return fmt.Errorf("predict: --ground-truth is shown by --panel; give --panel too")
	}
	// Every per-image output, named before any work.
	kinds := []struct{ flag, suffix string }{
		{"heatmap", "_heatmap.png"}, {"raw-map", "_map.npy"}, {"panel", "_panel.png"}, {"mask", "_mask.png"},
	}
	out := map[string][]string{}
	var outputs []namedPath
	for _, k := range kinds {
		names, err := perImageOutputs(paths, c.String(k.flag), k.suffix)
		if err != nil {
			return fmt.Errorf("--%s: %w", k.flag, err)
		}
		out[k.flag] = names
		for _, n := range names {
			outputs = append(outputs, namedPath{"--" + k.flag, n})
		}
	}
	heatOut, rawOut, panelOut, maskOut := out["heatmap"], out["raw-map"], out["panel"], out["mask"]
	inputs := []namedPath{{"--checkpoint", c.String("checkpoint")}, {"--weights", c.String("weights")}, {"--vocab", c.String("vocab")}, {"--ground-truth", gtPath}}
	for _, p := range paths {
		inputs = append(inputs, namedPath{"image", p})
	}
	if err := checkOutputs(outputs, inputs); err != nil {
		return err
	}
	if err := makeOutputFolders(outputs, len(paths) == 1); err != nil {
		return err
	}
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	w := c.App.Writer
	var cw *csv.Writer
	if c.Bool("csv") {
		cw = csv.NewWriter(w)
		cw.Write([]string{"path", "score", "label", "det_score", "heatmap", "raw_map"})
	}
	var bar *progressbar.ProgressBar
	if len(paths) > 1 && !c.Bool("quiet") && isTerminal(os.Stderr) {
		bar = progressbar.NewOptions(len(paths), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("predict"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))
	}
	var bad []error
	skip := func(d dataset.Decoded) {
		// One unreadable scan does not cost the others their results.
		bad = append(bad, d.Err)
		fmt.Fprintf(os.Stderr, "madclip: skipping %v\n", d.Err)
		if bar != nil {
			bar.Add(1)
		}
	}
	err = onCompute(func() error {
		p, err := openPredictor(c, tk)
		if err != nil {
			return err
		}
		defer p.Close()
		th, err := predictThreshold(c, p.Meta.Threshold)
		if err != nil {
			return err
		}
		origin := p.Meta.ThresholdOrigin()
		if c.IsSet("threshold") {
			origin = "--threshold"
		} else if p.Meta.Threshold == 0 && !c.Bool("quiet") {
			fmt.Fprintln(os.Stderr, "madclip: note: this checkpoint's threshold is uncalibrated (training had no held-out valid images of both classes); labels use 0.5, scores are unaffected")
		}
		var prov *infer.Provenance
		if c.Bool("json") {
			pv, err := infer.NewProvenance(p, c.String("checkpoint"), version, th, origin)
			if err != nil {
				return err
			}
			prov = &pv
		}
		items := make([]dataset.Sample, len(paths))
		for i, path := range paths {
			items[i].Path = path
		}
		keep := heatOut != nil || panelOut != nil || maskOut != nil
		opts := infer.StreamOptions{Batch: c.Int("batch"), KeepOriginal: keep, MaxPixels: c.Int64("max-pixels")}
		if len(paths) > 1 {
			opts.Skip = skip
		}
		return p.Stream(items, opts, func(d dataset.Decoded, r infer.Result) error {
			pr := prediction{Path: d.Sample.Path, Score: r.Score, DetScore: r.DetScore, Label: infer.Label(r.Score, th), Provenance: prov}
			o := infer.Overlay{Score: r.Score, Threshold: th, Label: pr.Label}
			if heatOut != nil {
				pr.Heatmap = heatOut[d.Index]
				if err := writePNG(pr.Heatmap, infer.Heatmap(d.Orig, r.Map, p.Size, o)); err != nil {
					return err
				}
			}
			if panelOut != nil {
				var gt []bool
				if gtPath != "" {
					if gt, err = infer.LoadTruth(gtPath, d.Orig.W, d.Orig.H); err != nil {
						return fmt.Errorf("--ground-truth %w", err)
					}
				}
				pr.Panel = panelOut[d.Index]
				if err := writePNG(pr.Panel, infer.Panel(d.Orig, gt, r.Map, p.Size, o)); err != nil {
					return err
				}
			}
			if maskOut != nil {
				pr.Mask = maskOut[d.Index]
				if err := writePNG(pr.Mask, infer.PredictedMask(d.Orig, r.Map, p.Size, th)); err != nil {
					return err
				}
			}
			if rawOut != nil {
				pr.RawMap = rawOut[d.Index]
				if err := infer.WriteNPY(pr.RawMap, r.Map, p.Size, p.Size); err != nil {
					return err
				}
			}
			switch {
			case c.Bool("json"):
				b, err := json.Marshal(pr)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintln(w, string(b)); err != nil {
					return err
				}
			case cw != nil:
				cw.Write(csvSafe(pr.Path, fmt.Sprintf("%.6f", pr.Score), pr.Label, fmt.Sprintf("%.6f", pr.DetScore), pr.Heatmap, pr.RawMap))
				if cw.Flush(); cw.Error() != nil {
					return cw.Error()
				}
			default:
				if _, err := fmt.Fprintf(w, "%-10s %.4f  %s\n", pr.Label, pr.Score, pr.Path); err != nil {
					return err
				}
			}
			if bar != nil {
				bar.Add(1)
			}
			return nil
		})
	})
	if cw != nil {
		cw.Flush()
	}
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		if len(bad) == 1 {
			return fmt.Errorf("1 of %d images could not be read: %v", len(paths), bad[0])
		}
		return fmt.Errorf("%d of %d images could not be read (first: %v)", len(bad), len(paths), bad[0])
	}
	return nil
}

// makeOutputFolders creates, before any work, the folders that per-image
// outputs go to (they mirror the inputs' folders). A single output named as
// a file must be in an existing folder.
func makeOutputFolders(outputs []namedPath, single bool) error {
	for _, o := range outputs {
		dir := filepath.Dir(o.path)
		if single && !isDir(dir) {
			return fmt.Errorf("%s %s: its folder %s does not exist", o.role, o.path, dir)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s %s: output folder %s: %w", o.role, o.path, dir, err)
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
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return png.Encode(w, img) })
}

// openPredictor loads --checkpoint (with --weights) on --device. It runs on
// the compute thread.
func openPredictor(c *cli.Context, tk *bpe.Tokenizer) (*infer.Predictor, error) {
	dev, err := deviceFromFlag(c)
	if err != nil {
		return nil, err
	}
	return infer.Open(c.String("checkpoint"), c.String("weights"), tk, dev)
}
