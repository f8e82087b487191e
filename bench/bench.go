// Package bench reproduces the paper's protocol end to end: for every
// dataset, shot count and seed it picks the shots, trains, evaluates on the
// test split, and tabulates mean ± std beside the paper's numbers.
package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"madclip/dataset"
	"madclip/infer"
	"madclip/model"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/train"
)

// Paper holds the published MadCLIP AUCs (%), 16-shot (Table 1 of the
// paper): image-level (AC) and, for datasets with masks, pixel-level (AS).
var Paper = map[int]map[string][2]float64{
	16: {
		"Histopathology": {90.14, 0}, "Chest": {88.15, 0}, "Retina_OCT2017": {99.71, 0},
		"Brain": {95.90, 97.97}, "Liver": {91.46, 99.74}, "Retina_RESC": {99.11, 99.45},
	},
}

// Short names the paper's tables use.
var Short = map[string]string{
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
	// Cross lists cross-dataset pairs: train on Cross[i][0], test on
	// Cross[i][1] (the paper's cross-dataset setting, same modality).
	Cross [][2]string
}

// Result is one run.
type Result struct {
	Dataset    string   `json:"dataset"`              // the test set
	TrainedOn  string   `json:"trained_on,omitempty"` // set in the cross-dataset setting
	Shots      int      `json:"shots"`
	Seed       uint64   `json:"seed"`
	ImageAUROC float64  `json:"image_auroc"`
	PixelAUROC *float64 `json:"pixel_auroc,omitempty"`
	TrainSec   float64  `json:"train_seconds"`
	EvalSec    float64  `json:"eval_seconds"`
}

// Run trains and evaluates every combination; datasets missing under Data
// are skipped with a note. It runs on the compute thread.
func Run(ctx context.Context, c Config, tk *bpe.Tokenizer, note func(string)) ([]Result, error) {
	pairs := c.Cross
	if len(pairs) == 0 {
		names := c.Datasets
		if len(names) == 0 {
			for _, b := range dataset.Benchmarks {
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
	// One backbone serves every run: loading ViT-L/14 (and hashing its
	// weights) once instead of twice per run.
	base := train.Config{Weights: c.Weights, Preset: c.Preset, BackboneSeed: 1, Device: c.Device, Model: model.Options{ImageSize: c.Size}}
	backbone, info, err := train.OpenBackbone(base)
	if err != nil {
		return nil, err
	}
	defer backbone.Free()
	shared := &train.SharedBackbone{Model: backbone, Info: info}
	var out []Result
	for _, pair := range pairs {
		name, test := pair[0], pair[1]
		if !present(name) || !present(test) {
			note(fmt.Sprintf("%s: not under %s, skipped", strings.Join(unique(name, test), " or "), c.Data))
			continue
		}
		label := name
		if test != name {
			label = name + " → " + test
		}
		for _, k := range c.Shots {
			for s := range c.Seeds {
				seed := uint64(s + 1)
				ck := filepath.Join(c.Work, fmt.Sprintf("%s-%dshot-seed%d.safetensors", name, k, seed))
				note(fmt.Sprintf("%s, %d shots, seed %d: training", label, k, seed))
				t0 := time.Now()
				_, err := train.Run(ctx, train.Config{
					Data: c.Data, Dataset: name, Shots: k, Seed: seed, Epochs: c.Epochs, Batch: c.Batch,
					Model: model.Options{ImageSize: c.Size}, Shared: shared, Device: c.Device, Out: ck,
				}, tk, train.Silent{})
				if err != nil {
					return out, fmt.Errorf("%s, %d shots, seed %d: %w", label, k, seed, err)
				}
				t1 := time.Now()
				p, err := infer.OpenShared(ck, shared, tk, c.Device)
				if err != nil {
					return out, err
				}
				ev, err := p.Evaluate(c.Data, test, 32, nil)
				p.Close()
				if err != nil {
					return out, err
				}
				r := Result{Dataset: test, Shots: k, Seed: seed, ImageAUROC: ev.ImageAUROC, PixelAUROC: ev.PixelAUROC,
					TrainSec: t1.Sub(t0).Seconds(), EvalSec: time.Since(t1).Seconds()}
				if test != name {
					r.TrainedOn = name
				}
				out = append(out, r)
				msg := fmt.Sprintf("%s, %d shots, seed %d: image AUROC %.2f%%", label, k, seed, 100*r.ImageAUROC)
				if r.PixelAUROC != nil {
					msg += fmt.Sprintf(", pixel AUROC %.2f%%", 100**r.PixelAUROC)
				}
				note(msg + fmt.Sprintf(" (train %.1f s, eval %.1f s)", r.TrainSec, r.EvalSec))
			}
		}
	}
	return out, nil
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
// dataset, our mean ± std over seeds with the paper's number in brackets.
func Table(results []Result) string {
	type key struct {
		name string
		k    int
	}
	colName := func(r Result) string {
		if r.TrainedOn != "" {
			return r.TrainedOn + "→" + r.Dataset
		}
		return r.Dataset
	}
	ac := map[key][]float64{}
	as := map[key][]float64{}
	var names []string
	var shots []int
	seenName, seenK := map[string]bool{}, map[int]bool{}
	cross := map[string]bool{}
	for _, r := range results {
		name := colName(r)
		cross[name] = r.TrainedOn != ""
		k := key{name, r.Shots}
		ac[k] = append(ac[k], 100*r.ImageAUROC)
		if r.PixelAUROC != nil {
			as[k] = append(as[k], 100**r.PixelAUROC)
		}
		if !seenName[name] {
			seenName[name] = true
			names = append(names, name)
		}
		if !seenK[r.Shots] {
			seenK[r.Shots] = true
			shots = append(shots, r.Shots)
		}
	}
	sort.Ints(shots)
	order := map[string]int{}
	for i, b := range dataset.Benchmarks {
		order[b.Name] = i
	}
	sort.SliceStable(names, func(i, j int) bool { return rank(order, names[i]) < rank(order, names[j]) })
	var cols []string
	hasAS := map[string]bool{}
	for _, n := range names {
		for _, k := range shots {
			if len(as[key{n, k}]) > 0 {
				hasAS[n] = true
			}
		}
		short := Short[n]
		if short == "" {
			short = n
			for full, sh := range Short { // cross pairs: short names on both sides
				short = strings.ReplaceAll(short, full, sh)
			}
		}
		cols = append(cols, short+" AC")
		if hasAS[n] {
			cols = append(cols, short+" AS")
		}
	}
	var b strings.Builder
	b.WriteString("| shots | " + strings.Join(cols, " | ") + " |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(cols)) + "\n")
	cell := func(v []float64, paper float64) string {
		if len(v) == 0 {
			return "—"
		}
		m, s := meanStd(v)
		c := fmt.Sprintf("%.2f ± %.2f", m, s)
		if paper > 0 {
			c += fmt.Sprintf(" (paper %.2f)", paper)
		}
		return c
	}
	for _, k := range shots {
		row := []string{fmt.Sprint(k)}
		for _, n := range names {
			p := Paper[k][n]
			if cross[n] {
				p = [2]float64{} // the built-in paper numbers are same-dataset ones
			}
			row = append(row, cell(ac[key{n, k}], p[0]))
			if hasAS[n] {
				row = append(row, cell(as[key{n, k}], p[1]))
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

func rank(order map[string]int, n string) int {
	if i, ok := order[n]; ok {
		return i
	}
	return len(order)
}
