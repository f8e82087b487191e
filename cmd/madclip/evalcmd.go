package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/dataset"
	"madclip/infer"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a dataset's whole test split with a checkpoint",
		Description: `Prints the image AUROC, average precision and F1-max, and for datasets with
masks the pixel AUROC and AP (all pixels at the model's input size, normal
images included). --report DIR writes report.json with every image's score,
the ROC curves as PNG, and heatmaps of the failure cases: the highest-scoring
normal images and the lowest-scoring abnormal ones.

Examples:
  madclip eval --checkpoint brain16.safetensors --data ~/data/MVFA --dataset Brain
  madclip eval --checkpoint tiny.safetensors --data /tmp/synth --dataset Brain --report report/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Required: true},
			&cli.StringFlag{Name: "data", Required: true, Usage: "the benchmark root"},
			&cli.StringFlag{Name: "dataset", Usage: "the dataset (default: the checkpoint's)"},
			&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it was trained on (default: the file recorded in the checkpoint)"},
			vocabFlag(),
			&cli.StringFlag{Name: "report", Usage: "folder for report.json, ROC plots and failure-case heatmaps"},
			&cli.IntFlag{Name: "failures", Value: 4, Usage: "failure cases of each kind to draw with --report"},
			&cli.IntFlag{Name: "batch", Value: 16},
			deviceFlag(),
			maxPixelsFlag(),
		},
		Action: evalAction,
	}
}

func evalAction(c *cli.Context) error {
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	if err := inRange(c, map[string][2]int{"failures": {0, 1000}}); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	report := c.String("report")
	if report != "" {
		if err := os.MkdirAll(filepath.Join(report, "failures"), 0o755); err != nil {
			return fmt.Errorf("report folder %s: %w", report, err)
		}
	}
	var ev *infer.Evaluation
	err = onCompute(func() error {
		p, err := openPredictor(c, tk)
		if err != nil {
			return err
		}
		defer p.Close()
		name := c.String("dataset")
		if name == "" {
			name = p.Meta.Dataset
		}
		ev, err = p.Evaluate(c.String("data"), name, infer.StreamOptions{Batch: c.Int("batch"), MaxPixels: c.Int64("max-pixels")}, nil)
		if err != nil || report == "" {
			return err
		}
		return writeFailures(p, ev, report, c.Int("failures"))
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s: %d test images\n", ev.Dataset, ev.Images)
	fmt.Fprintf(w, "image AUROC   %.2f%%\nimage AP      %.2f%%\nimage F1-max  %.2f%% (threshold %.4f)\n", 100*ev.ImageAUROC, 100*ev.ImageAP, 100*ev.ImageF1Max, ev.Threshold)
	if ev.PixelAUROC != nil {
		fmt.Fprintf(w, "pixel AUROC   %.2f%%\npixel AP      %.2f%%\n", 100**ev.PixelAUROC, 100**ev.PixelAP)
		fmt.Fprintf(w, "image AUROC of the detection head  %.2f%%\n", 100*ev.DetImageAUROC)
	}
	if report == "" {
		return nil
	}
	fpr, tpr := ev.ROC()
	if err := infer.PlotROC(filepath.Join(report, "roc_image.png"), ev.Dataset+" image-level ROC", fpr, tpr, ev.ImageAUROC); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ev, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(report, "report.json"), 0o644, func(wr io.Writer) error {
		_, err := wr.Write(append(b, '\n'))
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "report in %s\n", report)
	return nil
}

// writeFailures draws heatmaps of the n highest-scoring normal and n
// lowest-scoring abnormal images.
func writeFailures(p *infer.Predictor, ev *infer.Evaluation, dir string, n int) error {
	if err := clearFailures(filepath.Join(dir, "failures")); err != nil {
		return err
	}
	normals, abnormals := []infer.Scored{}, []infer.Scored{}
	for _, s := range ev.Scores {
		if s.Abnormal {
			abnormals = append(abnormals, s)
		} else {
			normals = append(normals, s)
		}
	}
	sort.Slice(normals, func(i, j int) bool { return normals[i].Score > normals[j].Score })
	sort.Slice(abnormals, func(i, j int) bool { return abnormals[i].Score < abnormals[j].Score })
	var pick []infer.Scored
	pick = append(pick, normals[:min(n, len(normals))]...)
	pick = append(pick, abnormals[:min(n, len(abnormals))]...)
	items := make([]dataset.Sample, len(pick))
	for i, s := range pick {
		items[i].Path = s.Path
	}
	return p.Stream(items, infer.StreamOptions{KeepOriginal: true}, func(d dataset.Decoded, r infer.Result) error {
		kind := "normal-high"
		if pick[d.Index].Abnormal {
			kind = "abnormal-low"
		}
		base := strings.TrimSuffix(filepath.Base(d.Sample.Path), filepath.Ext(d.Sample.Path))
		name := fmt.Sprintf("%s_%.3f_%s.png", kind, r.Score, base)
		return writeHeatmap(filepath.Join(dir, "failures", name), d.Orig, r.Map, p.Size)
	})
}

// clearFailures removes the failure-case pictures an earlier eval wrote
// into this report folder (and nothing else), so that a report never mixes
// two runs.
func clearFailures(dir string) error {
	for _, pattern := range []string{"normal-high_*.png", "abnormal-low_*.png"} {
		old, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, f := range old {
			if st, err := os.Lstat(f); err == nil && st.Mode().IsRegular() {
				if err := os.Remove(f); err != nil {
					return fmt.Errorf("report: remove the earlier %s: %w", f, err)
				}
			}
		}
	}
	return nil
}
