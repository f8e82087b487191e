package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/infer"
	"madclip/model/clip/bpe"
	"madclip/torch"
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

--heatmap writes the image with its anomaly map blended over it in the Turbo
colour map and a colour bar from 0 to 1 (a file for one input, a folder for
several). --raw-map writes the map itself (float32 in [0, 1] at the model's
input size) as .npy. --json prints one JSON object per line, --csv a table.

Examples:
  madclip predict scan.png --checkpoint brain16.safetensors --heatmap scan-heat.png
  madclip predict scans/ --checkpoint brain16.safetensors --heatmap heat/ --json > results.jsonl
  madclip predict a.png b.png --checkpoint liver.safetensors --csv --threshold 0.4`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Usage: "a checkpoint from madclip train", Required: true},
			&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it was trained on (default: the file recorded in the checkpoint; none for --preset tiny)"},
			vocabFlag(),
			&cli.StringFlag{Name: "heatmap", Usage: "heatmap PNG (one input) or folder (several)"},
			&cli.StringFlag{Name: "raw-map", Usage: "raw map .npy (one input) or folder (several)"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per image and line"},
			&cli.BoolFlag{Name: "csv", Usage: "CSV with a header line"},
			&cli.Float64Flag{Name: "threshold", Value: -1, Usage: "score at which an image is called anomalous (default: the checkpoint's, else 0.5)"},
			&cli.IntFlag{Name: "batch", Value: 16},
			deviceFlag(),
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
		for _, e := range entries {
			if !e.IsDir() && dataset.IsImage(e.Name()) {
				out = append(out, filepath.Join(a, e.Name()))
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no PNG or JPEG images in this folder", a)
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
}

// outputPath names a per-image output: the path itself for a single input,
// else a file in the folder.
func outputPath(dest string, single bool, input, ext string) string {
	if dest == "" {
		return ""
	}
	if single && !isDir(dest) {
		return dest
	}
	base := strings.TrimSuffix(filepath.Base(input), filepath.Ext(input))
	return filepath.Join(dest, base+ext)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func predictAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("predict: give images or folders (see madclip predict --help)")
	}
	if c.Bool("json") && c.Bool("csv") {
		return fmt.Errorf("predict: choose --json or --csv")
	}
	paths, err := imageInputs(c.Args().Slice())
	if err != nil {
		return err
	}
	single := len(paths) == 1
	for _, d := range []string{c.String("heatmap"), c.String("raw-map")} {
		if d != "" && !single {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("output folder %s: %w", d, err)
			}
		}
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
		defer cw.Flush()
	}
	var bar *progressbar.ProgressBar
	if !single && !c.Bool("quiet") && isTerminal(os.Stderr) {
		bar = progressbar.NewOptions(len(paths), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("predict"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))
	}
	return onCompute(func() error {
		p, err := openPredictor(c, tk)
		if err != nil {
			return err
		}
		defer p.Close()
		th := c.Float64("threshold")
		if th < 0 {
			th = p.Meta.Threshold
			if th == 0 {
				th = 0.5
			}
		}
		items := make([]dataset.Sample, len(paths))
		for i, path := range paths {
			items[i].Path = path
		}
		heat, raw := c.String("heatmap"), c.String("raw-map")
		return p.Stream(items, infer.StreamOptions{Batch: c.Int("batch"), KeepOriginal: heat != ""}, func(d dataset.Decoded, r infer.Result) error {
			pr := prediction{Path: d.Sample.Path, Score: r.Score, DetScore: r.DetScore, Label: "normal"}
			if r.Score >= th {
				pr.Label = "anomalous"
			}
			if pr.Heatmap = outputPath(heat, single, d.Sample.Path, "_heatmap.png"); pr.Heatmap != "" {
				if err := writeHeatmap(pr.Heatmap, d.Orig, r.Map, p.Size); err != nil {
					return err
				}
			}
			if pr.RawMap = outputPath(raw, single, d.Sample.Path, "_map.npy"); pr.RawMap != "" {
				if err := infer.WriteNPY(pr.RawMap, r.Map, p.Size, p.Size); err != nil {
					return err
				}
			}
			switch {
			case c.Bool("json"):
				b, _ := json.Marshal(pr)
				fmt.Fprintln(w, string(b))
			case cw != nil:
				cw.Write([]string{pr.Path, fmt.Sprintf("%.6f", pr.Score), pr.Label, fmt.Sprintf("%.6f", pr.DetScore), pr.Heatmap, pr.RawMap})
			default:
				fmt.Fprintf(w, "%-10s %.4f  %s\n", pr.Label, pr.Score, pr.Path)
			}
			if bar != nil {
				bar.Add(1)
			}
			return nil
		})
	})
}

func writeHeatmap(path string, orig *imaging.RGB, amap []float32, size int) error {
	img := infer.Heatmap(orig, amap, size, 0.45)
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return png.Encode(w, img) })
}

// openPredictor loads --checkpoint (with --weights) on --device. It runs on
// the compute thread.
func openPredictor(c *cli.Context, tk *bpe.Tokenizer) (*infer.Predictor, error) {
	dev, err := torch.ParseDevice(c.String("device"))
	if err != nil {
		return nil, err
	}
	return infer.Open(c.String("checkpoint"), c.String("weights"), tk, dev)
}
