package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/dataset"
	"madclip/infer"
	"madclip/internal/shortname"
	"madclip/metrics"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a dataset's whole test split with a checkpoint",
		Description: `Prints the threshold-free metrics (image AUROC, average precision, F1-max;
for datasets with masks the pixel AUROC and AP over all pixels at the model's
input size, normal images included, and AUPRO, the per-region overlap up to a
false positive rate of 0.3), and the labels' sensitivity, specificity,
precision and F1 at the checkpoint's threshold (or --threshold), with Dice and
IoU of the predicted regions for datasets with masks, pooled over all test
pixels and as the mean over the anomalous images (none when every test
mask is empty: the pixel metrics are then undefined). --json prints all of it
as one JSON object. --report DIR writes report.json (the metrics, every
image's path, score, label, det_score and true class, and the provenance:
madclip's version, the checkpoint and its SHA-256, the backbone, dataset,
shots, seed, threshold and its origin), the ROC and precision-recall curves
as PNG (image level, and pixel level for datasets with masks), and panels of
the failure cases (scan, ground truth, heatmap, predicted region, with score
and true class): the highest-scoring normal images and the lowest-scoring
abnormal ones.

Examples:
  madclip eval --checkpoint brain16.safetensors --data ~/data/MVFA --dataset Brain
  madclip eval --checkpoint tiny.safetensors --data /tmp/synth --dataset Brain --report report/
  madclip eval --checkpoint brain16.safetensors --data ~/data/MVFA --json > metrics.json`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Required: true, Usage: "a checkpoint from madclip train or madclip import"},
			&cli.StringFlag{Name: "data", Required: true, Usage: "the benchmark root"},
			&cli.StringFlag{Name: "dataset", Usage: "the dataset (default: the checkpoint's)"},
			&cli.StringFlag{Name: "weights", Usage: "the CLIP weights it was trained on (default: the file recorded in the checkpoint, or one with its digest; none for a checkpoint trained on a preset)"},
			vocabFlag(),
			&cli.StringFlag{Name: "report", Usage: "folder for report.json, ROC and precision-recall plots and failure-case figures"},
			&cli.IntFlag{Name: "failures", Value: 4, Usage: "hard cases of each class to draw with --report (the highest-scoring normal and lowest-scoring abnormal images; each says whether its label is wrong)"},
			thresholdFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the metrics as one JSON object"},
			&cli.IntFlag{Name: "batch", Value: infer.DefaultBatch, Usage: "images per forward pass"},
			deviceFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines (the metrics, warnings and notes still show)"},
		}, decodeFlags()...),
		Action: evalAction,
	}
}

func evalAction(c *cli.Context) (err error) {
	tk, err := loadTokenizer(c)
	if err != nil {
		return err
	}
	if err := inRange(c, map[string][2]int{"failures": {0, 1000}, "batch": batchRange}); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if err := checkThresholdFlag(c); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if c.IsSet("dataset") {
		if err := dataset.CheckName(c.String("dataset")); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	report := c.String("report")
	if c.IsSet("failures") && report == "" {
		return fmt.Errorf("eval: --failures draws into the --report folder; give --report too")
	}
	var reportInputs *inputSet
	if report != "" {
		var undo func()
		var lock *os.File
		if reportInputs, undo, lock, err = planReport(c, report); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		defer func() {
			if err != nil {
				undo()
			}
			lock.Close() // and with it the lock
		}()
	}
	// Ctrl-C, SIGTERM or SIGHUP stops the evaluation; no report is written.
	ctx, caught, stop := notifySignals(c.Context, os.Exit, signalGrace, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
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
		th, origin, err := labelThreshold(c, p)
		if err != nil {
			return err
		}
		prov, err := infer.NewProvenance(p, c.String("checkpoint"), version, th, origin)
		if err != nil {
			return err
		}
		opts := infer.StreamOptions{Batch: c.Int("batch"), Limits: decodeLimits(c), Context: ctx,
			Note: func(what string) { fmt.Fprintf(os.Stderr, "madclip: %s\n", oneLine(what)) }}
		if !c.Bool("quiet") && !c.Bool("json") {
			opts.Progress = evalProgress(name)
			opts.Stage = func(what string) { fmt.Fprintf(os.Stderr, "computing the %s\n", what) }
		}
		ev, err = p.Evaluate(c.String("data"), name, opts, th, origin, nil)
		if err != nil {
			return err
		}
		ev.Provenance = &prov
		if report == "" {
			return nil
		}
		drawing := infer.StreamOptions{Batch: c.Int("batch"), Limits: decodeLimits(c), KeepOriginal: true, Context: ctx}
		return writeFailures(p, ev, report, c.Int("failures"), uncalibrated(c, p), drawing, reportInputs)
	})
	if s := caught(); s != nil && errors.Is(err, context.Canceled) {
		return signalError{s, fmt.Errorf("stopped by %s; no report written", signalName(s))}
	}
	if err != nil {
		return err
	}
	// The report is written before anything is printed: a reader that
	// stops reading (eval … | head) must not cost it.
	if report != "" {
		if err := writeReport(report, ev); err != nil {
			return err
		}
	}
	return printResult(c, ev, report)
}

// printResult prints the evaluation on stdout: as JSON with --json, else as
// a table and where the report went.
func printResult(c *cli.Context, ev *infer.Evaluation, report string) error {
	w := c.App.Writer
	if c.Bool("json") {
		b, err := marshalJSON(ev, "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	printEvaluation(w, ev)
	if report != "" {
		fmt.Fprintf(w, "report in %s\n", oneLine(report))
	}
	return nil
}

// planReport checks, before any work, that the report folder can hold
// the report and that none of its files is an input (the checkpoint, the
// weights, a test image: a report folder may be anywhere, even the folder
// of the scans), then makes it and locks it against another eval. The
// inputs are returned for the failure pictures, whose names are known only
// at the end, with undo, which removes the folders it made if they are
// still empty (eval failed), and the open folder that holds the lock until
// it is closed.
func planReport(c *cli.Context, report string) (_ *inputSet, undo func(), lock *os.File, err error) {
	inputs, meta := checkpointInputs(c)
	name := c.String("dataset")
	if name == "" {
		name = meta.Dataset
	}
	inputs = append(inputs, splitInputs(c.String("data"), name, "test")...)
	outputs := []namedPath{{role: "--report", path: filepath.Join(report, "report.json"), kind: authorship.JSON}}
	for _, n := range infer.PlotNames() {
		outputs = append(outputs, namedPath{role: "--report", path: filepath.Join(report, n), kind: authorship.PNG})
	}
	failures := filepath.Join(report, "failures")
	for _, d := range []string{report, failures} {
		if err := outsideDatasets("--report", d, folderOutput, c.String("data"), []string{name}); err != nil {
			return nil, nil, nil, err
		}
	}
	// The failures folder is the report's own: old pictures are removed
	// from it, so it is never reached through a link.
	if st, err := os.Lstat(failures); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return nil, nil, nil, fmt.Errorf("--report %s: %s is a link; eval writes (and clears) its failure pictures only in a folder of its own", report, failures)
	}
	// Failure pictures of an earlier run are replaced; one that is (or
	// links to) an input, or that madclip did not write, is refused now,
	// not after scoring.
	var links []string
	for _, pattern := range failurePatterns {
		old, _ := filepath.Glob(filepath.Join(failures, pattern))
		for _, f := range old {
			outputs = append(outputs, namedPath{role: "--report", path: f, kind: authorship.PNG})
			if st, err := os.Lstat(f); err == nil && st.Mode()&os.ModeSymlink != 0 {
				links = append(links, f)
			}
		}
	}
	set := newInputSet(inputs)
	if err := set.checkAll(outputs); err != nil {
		return nil, nil, nil, err
	}
	if len(links) > 0 { // neither written through nor removed: the report would mix runs
		return nil, nil, nil, fmt.Errorf("--report %s: %s is a link with a failure picture's name; eval neither writes through nor removes such a link (remove it)", report, links[0])
	}
	var made madeFolders
	mk := failures
	if c.Int("failures") == 0 { // no pictures: no folder for them (an earlier run's are still removed)
		mk = report
	}
	if err := made.mkdirAll(mk); err != nil {
		return nil, nil, nil, fmt.Errorf("--report %s: %w", report, err)
	}
	if lock, err = lockFolder(report); err != nil {
		made.removeEmpty()
		return nil, nil, nil, fmt.Errorf("--report %s: %w", report, err)
	}
	return set, made.removeEmpty, lock, nil
}

// lockFolder takes an exclusive lock on the folder dir, held until the
// returned file is closed, so that two runs never write one report: a
// report.json beside another run's failure pictures would mislead.
func lockFolder(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, errors.New("another madclip eval is writing a report there; give each run its own report folder")
	case err != nil && !errors.Is(err, syscall.ENOLCK) && !errors.Is(err, syscall.ENOTSUP):
		f.Close()
		return nil, fmt.Errorf("lock the folder: %w", err)
	}
	return f, nil // a filesystem without locks: as before, unlocked
}

// failurePatterns match the failure pictures eval writes, and no others.
var failurePatterns = []string{"normal-high_*.png", "abnormal-low_*.png"}

// writeReport writes report.json and the curves into the report folder
// (the failure figures are written while the model is loaded).
func writeReport(report string, ev *infer.Evaluation) error {
	plots := ev.Plots()
	names := make([]string, 0, len(plots))
	for n := range plots {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := infer.PlotCurve(filepath.Join(report, n), plots[n]); err != nil {
			return err
		}
	}
	b, err := marshalJSON(ev, "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(report, "report.json"), 0o644, func(wr io.Writer) error {
		_, err := wr.Write(append(b, '\n'))
		return err
	})
}

// printEvaluation writes the metrics as a table a reader can scan.
func printEvaluation(w io.Writer, ev *infer.Evaluation) {
	trained := ""
	if pv := ev.Provenance; pv != nil && pv.Dataset != ev.Dataset {
		trained = fmt.Sprintf(" (a model trained on %s)", oneLine(pv.Dataset))
	}
	fmt.Fprintf(w, "%s: %d test images%s, scored by the %s\n", oneLine(ev.Dataset), ev.Images, trained, ev.ScoredBy)
	fmt.Fprintf(w, "image AUROC   %.2f%%\nimage AP      %.2f%%\nimage F1-max  %.2f%% (at the test split's own threshold %s)\n",
		100*ev.ImageAUROC, 100*ev.ImageAP, 100*ev.ImageF1Max, metrics.FormatThreshold(ev.F1MaxThreshold))
	if ev.PixelAUROC != nil {
		fmt.Fprintf(w, "pixel AUROC   %.2f%%\npixel AP      %.2f%%\npixel AUPRO   %.2f%% (FPR up to %.1f)\n",
			100**ev.PixelAUROC, 100**ev.PixelAP, 100**ev.PixelAUPRO, infer.AUPROLimit)
	}
	if ev.NoPixelMetrics != "" {
		fmt.Fprintf(w, "no pixel metrics: %s\n", ev.NoPixelMetrics)
	}
	if ev.ScoredBy != infer.ScoreKind(false) {
		fmt.Fprintf(w, "image AUROC of the detection head  %.2f%%\n", 100*ev.DetImageAUROC)
	}
	a := ev.At
	fmt.Fprintf(w, "at threshold %s (%s):\n", metrics.FormatThreshold(a.Threshold), a.Origin)
	fmt.Fprintf(w, "  sensitivity %.2f%%  specificity %.2f%%  precision %.2f%%  F1 %.2f%%  (TP %d, FP %d, TN %d, FN %d)\n",
		100*a.Sensitivity, 100*a.Specificity, 100*a.Precision, 100*a.F1, a.TP, a.FP, a.TN, a.FN)
	if a.TP+a.FP == 0 {
		fmt.Fprintln(w, "  (no image labelled anomalous: precision is undefined, given as 0)")
	}
	if a.PixelDice != nil {
		fmt.Fprintf(w, "  pixel Dice %.2f%%  pixel IoU %.2f%% (pooled over all test pixels)\n", 100**a.PixelDice, 100**a.PixelIoU)
		if a.PixelDiceMean != nil {
			fmt.Fprintf(w, "  per anomalous image: mean Dice %.2f%%  mean IoU %.2f%%\n", 100**a.PixelDiceMean, 100**a.PixelIoUMean)
		}
	}
}

// writeFailures draws heatmaps of the n highest-scoring normal and n
// lowest-scoring abnormal images.
func writeFailures(p *infer.Predictor, ev *infer.Evaluation, dir string, n int, uncalibrated bool, o infer.StreamOptions, inputs *inputSet) error {
	// The earlier report goes first: stopped or failing from here on, the
	// folder holds no report.json that the new pictures do not belong to.
	if err := withdrawReport(dir); err != nil {
		return err
	}
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
	// Ties go by path, so that the same run picks and names the same cases.
	sort.Slice(normals, func(i, j int) bool {
		a, b := normals[i], normals[j]
		return a.Score > b.Score || (a.Score == b.Score && a.Path < b.Path)
	})
	sort.Slice(abnormals, func(i, j int) bool {
		a, b := abnormals[i], abnormals[j]
		return a.Score < b.Score || (a.Score == b.Score && a.Path < b.Path)
	})
	var pick []infer.Scored
	pick = append(pick, normals[:min(n, len(normals))]...)
	pick = append(pick, abnormals[:min(n, len(abnormals))]...)
	// Images of one class that differ only in extension (x.png, x.jpg)
	// keep it in their picture's name, as predict's outputs do.
	stem := func(s infer.Scored) string {
		return strings.TrimSuffix(filepath.Base(string(s.Path)), filepath.Ext(string(s.Path)))
	}
	stems := map[[2]string]int{}
	for _, s := range ev.Scores {
		stems[[2]string{strconv.FormatBool(s.Abnormal), stem(s)}]++
	}
	used := map[string]bool{} // names written, so that no picture replaces another
	items := make([]dataset.Sample, len(pick))
	// One precision for every figure and name, enough to tell each score
	// from the threshold.
	decimals := 3
	for i, s := range pick {
		items[i].Path = string(s.Path)
		decimals = max(decimals, infer.Decimals(s.Score, ev.At.Threshold, 3))
	}
	return p.Stream(items, o, func(d dataset.Decoded, r infer.Result) error {
		s := pick[d.Index]
		kind := "normal-high"
		if s.Abnormal {
			kind = "abnormal-low"
		}
		truth := caseNote(s.Abnormal, s.Score, ev.At.Threshold)
		var gt []bool
		if s.MaskPath != "" {
			var err error
			if gt, _, err = infer.LoadTruth(s.MaskPath, d.Sample.Path, d.Orig.W, d.Orig.H); err != nil { // faint masks: eval says so
				return err
			}
		} else if ev.PixelAUROC != nil {
			gt = make([]bool, d.Orig.W*d.Orig.H) // a normal image: no true region
		}
		base := stem(s)
		if stems[[2]string{strconv.FormatBool(s.Abnormal), base}] > 1 {
			base += "_" + strings.TrimPrefix(filepath.Ext(string(s.Path)), ".")
		}
		// The score with the decimals that tell it from the threshold, as
		// the picture's caption prints it; a scan's long name is cut (with
		// a hash, to stay distinct) so that the picture's name fits.
		prefix := fmt.Sprintf("%s_%.*f_", kind, decimals, r.Score)
		base = shortname.Fit(base, maxNameBytes-len(prefix)-len("-99.png"))
		name := prefix + base + ".png"
		for n := 2; used[name]; n++ { // x_png.png beside x.png and x.jpg
			name = fmt.Sprintf("%s%s-%d.png", prefix, base, n)
		}
		used[name] = true
		o := infer.Overlay{Score: r.Score, Threshold: ev.At.Threshold, Label: s.Label, Note: "- " + truth, Decimals: decimals,
			Name: filepath.Base(d.Sample.Path), Uncalibrated: uncalibrated}
		out := filepath.Join(dir, "failures", name)
		if err := inputs.check(namedPath{role: "--report", path: out, kind: authorship.PNG}); err != nil {
			return err
		}
		fig, err := infer.Panel(d.Orig, gt, r.Map, p.Size, o)
		if err != nil { // the other pictures and the report still come
			fmt.Fprintf(os.Stderr, "madclip: note: no failure picture of %s: %v\n", oneLine(d.Sample.Path), err)
			return nil
		}
		return writePNG(out, fig)
	})
}

// caseNote says under a hard case's picture what the image truly is and
// whether its label is a failure: the hardest cases of each class are
// drawn, and they are failures only when the label is wrong.
func caseNote(abnormal bool, score, threshold float64) string {
	called := score >= threshold
	switch {
	case abnormal && !called:
		return "truly abnormal: missed"
	case abnormal:
		return "truly abnormal: labelled right"
	case called:
		return "truly normal: false alarm"
	}
	return "truly normal: labelled right"
}

// withdrawReport removes the report.json and curves an earlier eval wrote
// into dir (files madclip did not write stay; planReport has refused them
// already).
func withdrawReport(dir string) error {
	names := infer.PlotNames()
	for _, n := range append(names[:], "report.json") {
		if err := removeEarlier(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// removeEarlier removes f if it is a regular file that madclip wrote;
// anything else there stays.
func removeEarlier(f string) error {
	if st, err := os.Lstat(f); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if ours, err := authorship.Written(f); err != nil || !ours {
		return nil
	}
	if err := os.Remove(f); err != nil {
		return fmt.Errorf("report: remove the earlier %s: %w", f, err)
	}
	return nil
}

// clearFailures removes the failure-case pictures an earlier eval wrote
// into this report folder (and nothing else), so that a report never mixes
// two runs.
//
// planReport has refused, before scoring, any such picture that is an
// input or that madclip did not write; a regular file removed here is only
// a name, never a link's target, and carries madclip's mark.
func clearFailures(dir string) error {
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() { // a link is not ours to empty
		return nil
	}
	for _, pattern := range failurePatterns {
		old, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, f := range old {
			if err := removeEarlier(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// evalProgress tells of the scoring once the test split has been found: a
// bar on a terminal, one line in a log.
func evalProgress(name string) func(done, total int) {
	var bar *countBar
	return func(done, total int) {
		if done == 0 {
			fmt.Fprintf(os.Stderr, "scoring the test split of %s (%d images)\n", oneLine(name), total)
			bar = newCountBar("eval", total)
			return
		}
		bar.Set(done)
	}
}
