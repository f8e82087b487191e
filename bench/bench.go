// Package bench reproduces the paper's protocol end to end: for every
// dataset, shot count and seed it takes the shots (the authors' fixed lists
// by default), trains, evaluates on the test split, and tabulates mean ± std
// beside the paper's numbers.
package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/infer"
	"madclip/internal/jsonpath"
	"madclip/internal/plural"
	"madclip/model"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/train"
)

// shortNames are the dataset names the paper's tables use.
var shortNames = map[string]string{
	"Histopathology": "HIS", "Chest": "Chest", "Retina_OCT2017": "OCT17",
	"Brain": "Brain", "Liver": "Liver", "Retina_RESC": "RESC",
}

// Config is one benchmark.
type Config struct {
	Data     string
	Datasets []string // empty: all six (those present)
	Shots    []int
	Seeds    int
	Epochs   int
	Weights  string
	Preset   string
	Device   torch.Device
	Size     int
	Work     string // where checkpoints go
	Batch    int
	// Model holds the model options every run takes besides the image
	// size (Size): the reference code's departures from CLIP and the
	// paper's ablations; the object word (for a dataset of the user's own)
	// and tapped layers, else each dataset's and backbone's defaults.
	// SoftmaxLoss is the loss ablation.
	Model       model.Options
	SoftmaxLoss bool
	// SelectOnValid keeps each run's best epoch on its held-out valid
	// images (train's --select-on-valid) instead of the last.
	SelectOnValid bool
	// DrawShots draws seeded shots per seed instead of the authors' fixed
	// lists (which the six benchmark datasets use by default: the paper's
	// protocol, one fixed set of k+k images, seeds varying initialisation,
	// augmentation draws and order).
	DrawShots bool
	// Cross lists cross-dataset pairs: train on Cross[i][0], test on
	// Cross[i][1] (the paper's cross-dataset setting, same modality).
	Cross [][2]string
	// Version is madclip's, recorded in every result's provenance.
	Version string
	// Limits say what images are decoded, in training and evaluation.
	Limits imaging.Limits
	// Warn tells of what makes a run mean less than it seems (masks that
	// mark nothing, a below-chance threshold), each warning once; nil
	// gives them to Run's note.
	Warn func(string)
}

// Result is one run.
type Result struct {
	Dataset   string        `json:"dataset"`              // the test set
	TrainedOn string        `json:"trained_on,omitempty"` // set in the cross-dataset setting
	Shots     int           `json:"shots"`
	ShotsFile jsonpath.Path `json:"shots_file,omitempty"` // the authors' list used; empty when drawn
	// ShotImages names the shots the run trained on, from the list or the
	// seed's draw.
	ShotImages *checkpoint.ShotImages `json:"shot_images,omitempty"`
	Seed       uint64                 `json:"seed"`
	// The metrics, named as eval names them.
	infer.Metrics
	TrainSec float64 `json:"train_seconds"` // to the millisecond
	EvalSec  float64 `json:"eval_seconds"`
	// Settings are the run's settings that the paper fixes.
	Settings Settings `json:"settings"`
	// Provenance names the run's checkpoint, backbone and threshold.
	Provenance infer.Provenance `json:"provenance"`
}

// Settings are a run's settings that the paper fixes (60 epochs of batch
// 16 at 240 px on CLIP's ViT-L/14 weights); zero where unknown.
type Settings struct {
	Epochs    int    `json:"epochs"`
	Batch     int    `json:"batch"`
	ImageSize int    `json:"image_size"`
	Preset    string `json:"preset,omitempty"` // a random-weights preset instead of real weights
	// Architecture names the CLIP the run stood on ("ViT-L/14-336", as the
	// paper's), preset or real weights.
	Architecture string `json:"architecture,omitempty"`
	// Layers are the tapped blocks (the paper's 6, 12, 18, 24 on ViT-L/14).
	Layers    []int `json:"layers,omitempty"`
	DrawShots bool  `json:"draw_shots,omitempty"` // shots drawn with the seed, not the authors' list
	// SelectOnValid: the epoch kept is the best on held-out valid images
	// (the paper's numbers come from the best on the test split).
	SelectOnValid bool `json:"select_on_valid,omitempty"`
}

// runnable lists the (train, test) pairs to run, the datasets given or all
// six of the benchmark, or the cross-dataset pairs; a pair with a dataset
// missing under Data is skipped with a note naming what is missing.
func (c Config) runnable(note func(string)) [][2]string {
	pairs := c.Cross
	if len(pairs) == 0 {
		names := c.Datasets
		if len(names) == 0 {
			for _, b := range dataset.Benchmarks() {
				names = append(names, b.Name)
			}
		}
		for _, n := range names {
			pairs = append(pairs, [2]string{n, n})
		}
	}
	present := func(n string) bool {
		st, err := os.Stat(dataset.Dir(c.Data, n))
		return err == nil && st.IsDir()
	}
	var runnable [][2]string
	for _, pair := range pairs {
		name, test := pair[0], pair[1]
		var missing []string
		for _, d := range unique(name, test) {
			if !present(d) {
				missing = append(missing, d)
			}
		}
		switch {
		case len(missing) == 0:
			runnable = append(runnable, pair)
			continue
		case len(missing) == 2:
			note(fmt.Sprintf("%s and %s: neither is under %s, so %s → %s is skipped", name, test, c.Data, name, test))
		case name != test:
			note(fmt.Sprintf("%s: not under %s, so %s → %s is skipped", missing[0], c.Data, name, test))
		default:
			hint := ""
			if d := dataset.OtherCase(c.Data, name); d != "" {
				hint = fmt.Sprintf(" (did you mean %s? names are case-sensitive)", d)
			}
			note(fmt.Sprintf("%s: not under %s, skipped%s", name, c.Data, hint))
		}
	}
	return runnable
}

// Run trains and evaluates every combination; datasets missing under Data
// are skipped with a note. It runs on the compute thread.
func Run(ctx context.Context, c Config, tk *bpe.Tokenizer, note func(string)) ([]Result, error) {
	var skipped []string
	runnable := c.runnable(func(s string) { skipped = append(skipped, s) })
	// One pair's absence, or a --data holding no dataset at all, is the
	// caller's one-line error; the notes say which of several is missing.
	if len(runnable) > 0 || (len(skipped) > 1 && len(dataset.Under(c.Data)) > 0) {
		for _, s := range skipped {
			note(s)
		}
	}
	if len(runnable) == 0 {
		return nil, nil // the caller says none is there, before any loading
	}
	// Every split a run reads is checked before the first training, down
	// to each image's header: a test split found missing or an empty image
	// found after hours of training wastes them.
	for _, pair := range runnable {
		valid, err := dataset.ReadSplit(c.Data, pair[0], "valid")
		if err != nil {
			return nil, err
		}
		test, err := dataset.ReadSplit(c.Data, pair[1], "test")
		if err != nil {
			return nil, err
		}
		for _, s := range []*dataset.Split{valid, test} {
			if err := s.CheckHeaders(c.Limits, c.Size); err != nil {
				return nil, err
			}
			if n := s.SkipNote(); n != "" {
				note(n)
			}
		}
		if err := c.enoughShots(valid); err != nil {
			return nil, err
		}
		if _, known := model.ObjectWord(pair[0]); !known && c.Model.Object == "" {
			return nil, fmt.Errorf("no object word for dataset %q, which is not one of the benchmark's: give the word its prompts should name (--object, e.g. \"knee MRI\")", pair[0])
		}
	}
	warn := c.Warn
	if warn == nil {
		warn = note
	}
	// One backbone serves every run: loading ViT-L/14 (and hashing its
	// weights) once instead of twice per run.
	opts := c.Model
	opts.ImageSize = c.Size
	src := checkpoint.Source{Preset: c.Preset, Seed: checkpoint.DefaultBackboneSeed, Weights: c.Weights}
	backbone, info, err := checkpoint.OpenBackbone(src, opts.CLIPOptions(c.Device))
	if err != nil {
		return nil, err
	}
	defer backbone.Free()
	shared := &checkpoint.SharedBackbone{Model: backbone, Info: info}
	var out []Result
	warned := map[string]bool{}
	total := len(runnable) * len(c.Shots) * c.Seeds
	started := time.Now()
	progress := func() string {
		done := len(out)
		el := time.Since(started)
		s := fmt.Sprintf("[%d/%d runs, %s elapsed", done, total, el.Round(time.Second))
		if done > 0 {
			s += fmt.Sprintf(", about %s left", (el / time.Duration(done) * time.Duration(total-done)).Round(time.Second))
		}
		return s + "]"
	}
	for _, pair := range runnable {
		name, test := pair[0], pair[1]
		label := name
		if test != name {
			label = name + " → " + test
		}
		for _, k := range c.Shots {
			for s := range c.Seeds {
				seed := uint64(s + 1)
				run := fmt.Sprintf("%s, %s, seed %d", label, shots(k), seed)
				note(progress() + " " + run + ": training")
				r, err := oneRun(ctx, c, opts, shared, tk, &runWarnings{dataset: label, run: run, warn: warn, seen: warned}, name, test, k, seed)
				if err != nil {
					return out, fmt.Errorf("%s: %w", run, err)
				}
				out = append(out, r)
				msg := run
				if e := r.Provenance.SelectedEpoch; e > 0 {
					msg += fmt.Sprintf(" (kept epoch %d)", e)
				}
				msg += fmt.Sprintf(": image AUROC %.2f%%", 100*r.ImageAUROC)
				if r.PixelAUROC != nil {
					msg += fmt.Sprintf(", pixel AUROC %.2f%%", 100**r.PixelAUROC)
				}
				note(msg + fmt.Sprintf(" (train %.1f s, eval %.1f s)", r.TrainSec, r.EvalSec))
			}
		}
	}
	return out, nil
}

// enoughShots refuses, before any training, shot counts a valid split
// cannot give (k of each class), and with --select-on-valid shot counts
// that would take every valid image of a class, leaving none to select on.
func (c Config) enoughShots(valid *dataset.Split) error {
	if len(c.Shots) == 0 {
		return nil
	}
	n, a := dataset.Counts(valid.Samples)
	k := slices.Max(c.Shots)
	switch {
	case n < k || a < k:
		return fmt.Errorf("%s has %d normal and %d abnormal images: too few for %s of each; give fewer --shots", valid.Dir, n, a, shots(k))
	case c.SelectOnValid && (n == k || a == k):
		class := "normal"
		if a == k {
			class = "abnormal"
		}
		return fmt.Errorf("--select-on-valid: %s has %d normal and %d abnormal images: %s take every %s one, leaving none to select on; give fewer --shots or leave out --select-on-valid", valid.Dir, n, a, shots(k), class)
	}
	return nil
}

// oneRun trains one model (dataset name, k shots, seed) on the shared
// backbone into its checkpoint under c.Work and evaluates it on test.
func oneRun(ctx context.Context, c Config, opts model.Options, shared *checkpoint.SharedBackbone, tk *bpe.Tokenizer, rep train.Reporter, name, test string, k int, seed uint64) (Result, error) {
	ck := CheckpointPath(c.Work, name, k, seed)
	t0 := time.Now()
	res, err := train.Run(ctx, train.Config{
		Data: c.Data, Dataset: name, Shots: k, DrawShots: c.DrawShots, Seed: seed, Epochs: c.Epochs, Batch: c.Batch,
		Model: opts, SoftmaxLoss: c.SoftmaxLoss, SelectOnValid: c.SelectOnValid, Shared: shared, Device: c.Device, Out: ck, Limits: c.Limits,
	}, tk, rep)
	if err != nil {
		return Result{}, err
	}
	t1 := time.Now()
	p, err := infer.OpenShared(ck, shared, tk, c.Device)
	if err != nil {
		return Result{}, err
	}
	defer p.Close()
	th, origin := p.Threshold()
	ev, err := p.Evaluate(c.Data, test, infer.StreamOptions{Batch: 32, Limits: c.Limits}, th, origin, nil)
	if err != nil {
		return Result{}, err
	}
	prov, err := infer.NewProvenance(p, ck, c.Version, th, origin)
	if err != nil {
		return Result{}, err
	}
	r := newResult(res.Meta, ev, prov, seed)
	r.TrainSec, r.EvalSec = millis(t1.Sub(t0)), millis(time.Since(t1))
	if test != name {
		r.TrainedOn = name
	}
	return r, nil
}

// newResult is a run's result: the model's record m, its evaluation ev.
func newResult(m checkpoint.Meta, ev *infer.Evaluation, prov infer.Provenance, seed uint64) Result {
	r := Result{Dataset: ev.Dataset, Shots: m.Shots, ShotsFile: m.ShotsFile, ShotImages: m.ShotImages, Seed: seed,
		Metrics: ev.Metrics, Provenance: prov,
		Settings: Settings{Epochs: m.Epochs, ImageSize: m.Model.ImageSize, Preset: m.Backbone.Preset,
			Architecture: m.Backbone.Config.Name(), Layers: m.Model.Layers}}
	if r.Settings.Layers == nil {
		r.Settings.Layers = model.DefaultLayers(m.Backbone.Config.VisionLayers)
	}
	if m.Training != nil {
		r.Settings.Batch, r.Settings.DrawShots, r.Settings.SelectOnValid = m.Training.Batch, m.Training.DrawShots, m.Training.SelectOnValid
	}
	return r
}

// runWarnings is a training run's reporter in a bench: silent but for its
// warnings, each given once per dataset over the bench (the first run's),
// under the run's label.
type runWarnings struct {
	train.Silent
	dataset, run string // "Brain"; "Brain, 2 shots, seed 1"
	warn         func(string)
	seen         map[string]bool
}

func (r *runWarnings) Warn(msg string) {
	if key := r.dataset + ": " + msg; !r.seen[key] {
		r.seen[key] = true
		r.warn("warning: " + r.run + ": " + msg)
	}
}

func unique(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func meanStd(v []float64) (float64, float64) {
	var m float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	var s float64
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	if len(v) > 1 {
		s /= float64(len(v) - 1)
	}
	return m, math.Sqrt(s)
}

// Table renders the results as Markdown in the layout of the paper's
// tables: a row per shot count, AC (and AS where there are masks) per
// dataset or cross-dataset pair, our mean ± std over seeds (the mean alone
// for one seed) with the paper's number beside it, "(paper 93.93)", where
// it has one.
func Table(results []Result) string {
	type key struct {
		name string
		k    int
	}
	type column struct {
		name, train, test string // train is "" for same-dataset columns
	}
	ac := map[key][]float64{}
	as := map[key][]float64{}
	var cols []column
	var shots []int
	seenCol, seenK := map[string]bool{}, map[int]bool{}
	for _, r := range results {
		col := column{name: r.Dataset, test: r.Dataset}
		if r.TrainedOn != "" {
			col = column{name: r.TrainedOn + "→" + r.Dataset, train: r.TrainedOn, test: r.Dataset}
		}
		k := key{col.name, r.Shots}
		ac[k] = append(ac[k], 100*r.ImageAUROC)
		if r.PixelAUROC != nil {
			as[k] = append(as[k], 100**r.PixelAUROC)
		}
		if !seenCol[col.name] {
			seenCol[col.name] = true
			cols = append(cols, col)
		}
		if !seenK[r.Shots] {
			seenK[r.Shots] = true
			shots = append(shots, r.Shots)
		}
	}
	sort.Ints(shots)
	order := map[string]int{}
	for i, b := range dataset.Benchmarks() {
		order[b.Name] = i
	}
	sort.SliceStable(cols, func(i, j int) bool { return rank(order, cols[i].name) < rank(order, cols[j].name) })
	var header []string
	hasAS := map[string]bool{}
	for _, c := range cols {
		for _, k := range shots {
			if len(as[key{c.name, k}]) > 0 {
				hasAS[c.name] = true
			}
		}
		short := shortNames[c.name]
		if short == "" {
			short = c.name
			for full, sh := range shortNames { // cross pairs: short names on both sides
				short = strings.ReplaceAll(short, full, sh)
			}
		}
		header = append(header, short+" AC")
		if hasAS[c.name] {
			header = append(header, short+" AS")
		}
	}
	var b strings.Builder
	b.WriteString("| shots | " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(header)) + "\n")
	for _, k := range shots {
		row := []string{fmt.Sprint(k)}
		for _, c := range cols {
			pAC, okAC := paperNumber(Result{Dataset: c.test, TrainedOn: c.train, Shots: k})
			var pAS float64
			var okAS bool
			if c.train == "" {
				pAS, okAS = PaperAUC(c.name, k, "AS")
			}
			row = append(row, tableCell(ac[key{c.name, k}], pAC, okAC))
			if hasAS[c.name] {
				row = append(row, tableCell(as[key{c.name, k}], pAS, okAS))
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	if len(results) > 0 {
		b.WriteString("\n" + epochsNote(results) + "\n")
	}
	if n := settingsNote(results); n != "" {
		b.WriteString("\n" + n + "\n")
	}
	return b.String()
}

// paperNumber is the paper's image AUC for r's cell of the table, if it
// has one: Tables 1 and 2 for a dataset, Table 3 for a 16-shot
// cross-dataset pair.
func paperNumber(r Result) (float64, bool) {
	if r.TrainedOn != "" {
		if r.Shots != 16 {
			return 0, false
		}
		return PaperCrossAUC(r.TrainedOn, r.Dataset)
	}
	return PaperAUC(r.Dataset, r.Shots, "AC")
}

// epochsNote says which epoch of each run the table scores, beside the
// paper's choice: its numbers are each run's best epoch on the test split
// (the authors' train.py), which no honest protocol can do.
func epochsNote(results []Result) string {
	selected := 0
	for _, r := range results {
		if r.Settings.SelectOnValid {
			selected++
		}
	}
	ours := "each run's last epoch"
	switch selected {
	case len(results):
		ours = "each run's best epoch on its held-out valid images (image + pixel AUROC with masks, image AUROC without)"
	case 0:
	default:
		ours = "the last epoch, or the best on held-out valid images where a run selected one"
	}
	for _, r := range results {
		if _, ok := paperNumber(r); ok {
			return "Scored: " + ours + "; the paper's numbers are each run's best epoch on the test split itself (the authors' code), an optimistic choice."
		}
	}
	return "Scored: " + ours + "."
}

// tableCell is one cell of Table: the mean of v, ± their standard
// deviation when there are several, and the paper's number when known.
func tableCell(v []float64, paper float64, known bool) string {
	if len(v) == 0 {
		return "—"
	}
	m, sd := meanStd(v)
	c := fmt.Sprintf("%.2f", m)
	if len(v) > 1 {
		c += fmt.Sprintf(" ± %.2f", sd)
	}
	if known {
		c += fmt.Sprintf(" (paper %.2f)", paper)
	}
	return c
}

// settingsNote says how the runs' settings differ from the paper's, so
// that a quick run's numbers are not read as a reproduction of the
// paper's beside them; "" when they do not.
func settingsNote(results []Result) string {
	var diffs []string
	differ := func(what func(Settings) int, want int, say func(int) string) {
		seen := map[int]bool{}
		var vals []int
		for _, r := range results {
			if v := what(r.Settings); v != 0 && v != want && !seen[v] {
				seen[v] = true
				vals = append(vals, v)
			}
		}
		sort.Ints(vals)
		for _, v := range vals {
			diffs = append(diffs, say(v))
		}
	}
	differ(func(s Settings) int { return s.Epochs }, train.PaperEpochs, func(v int) string {
		return fmt.Sprintf("%s (paper %d)", plural.Of(v, "epoch"), train.PaperEpochs)
	})
	differ(func(s Settings) int { return s.Batch }, train.PaperBatch, func(v int) string {
		return fmt.Sprintf("batch %d (paper %d)", v, train.PaperBatch)
	})
	differ(func(s Settings) int { return s.ImageSize }, model.PaperImageSize, func(v int) string {
		return fmt.Sprintf("%d-px images (paper %d)", v, model.PaperImageSize)
	})
	presets := map[string]bool{}
	drawn := false
	for _, r := range results {
		if p := r.Settings.Preset; p != "" && !presets[p] {
			presets[p] = true
			diffs = append(diffs, fmt.Sprintf("the %s preset with random weights (paper: CLIP ViT-L/14)", p))
		}
		if _, ok := PaperAUC(r.Dataset, r.Shots, "AC"); ok && r.TrainedOn == "" && r.ShotsFile == "" {
			drawn = true
		}
	}
	if drawn {
		diffs = append(diffs, "drawn shots (paper: the authors' fixed lists)")
	}
	archs, layers := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		if a := r.Settings.Architecture; a != "" && a != PaperArchitecture && r.Settings.Preset == "" && !archs[a] {
			archs[a] = true
			diffs = append(diffs, fmt.Sprintf("CLIP %s (paper: %s)", a, PaperArchitecture))
		}
		l := fmt.Sprint(r.Settings.Layers)
		if len(r.Settings.Layers) > 0 && !slices.Equal(r.Settings.Layers, paperLayers) && !layers[l] && r.Settings.Preset == "" {
			layers[l] = true
			diffs = append(diffs, fmt.Sprintf("tapped layers %s (paper %s)", joinInts(r.Settings.Layers), joinInts(paperLayers)))
		}
	}
	if len(results) > 0 {
		diffs = append(diffs, modelDepartures(results[0].Provenance)...)
	}
	if len(diffs) == 0 {
		return ""
	}
	return "Not the paper's settings: " + strings.Join(diffs, ", ") + "; the paper's numbers are for orientation only."
}

// PaperArchitecture is the CLIP the paper stands on: OpenAI's ViT-L/14 at
// 336 px, run at 240 px.
const PaperArchitecture = "ViT-L/14-336"

// paperLayers are the blocks the paper taps on it.
var paperLayers = []int{6, 12, 18, 24}

// joinInts writes 6, 12, 18, 24.
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// shots writes "1 shot", "16 shots".
func shots(k int) string { return plural.Of(k, "shot") }

func rank(order map[string]int, n string) int {
	if i, ok := order[n]; ok {
		return i
	}
	return len(order)
}

// CheckpointPath is where Run keeps the checkpoint of one run (trained on
// dataset with k shots and seed) in the work folder.
func CheckpointPath(work, dataset string, k int, seed uint64) string {
	return filepath.Join(work, fmt.Sprintf("%s-%dshot-seed%d.safetensors", dataset, k, seed))
}

// millis is d in seconds, rounded to the millisecond for reports.
func millis(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// modelDepartures names what a run's model does unlike the paper's: the
// reference code's departures from CLIP it keeps, and the ablations (every
// run of a bench has the same).
func modelDepartures(p infer.Provenance) []string {
	out := p.Model.Departures()
	if p.Training != nil && p.Training.SoftmaxLoss {
		out = append(out, "ablation: softmax loss")
	}
	return out
}
