package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/internal/plural"
	"madclip/internal/regularfile"
	"madclip/internal/shellquote"
	"madclip/metrics"
	"madclip/model"
	"madclip/weights"
)

// inspectCommand is "madclip inspect": what a checkpoint is, read from its
// description alone (no tensor is loaded, no weights are needed).
func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe a checkpoint: what it was trained on and how, and its threshold",
		ArgsUsage: "CHECKPOINT",
		Description: `Prints what a madclip checkpoint records: the dataset and its object word,
the shots (the list or the seed that chose them, and their file names), the
backbone (a preset, or CLIP weights by file and digest, and whether the file
is still there and holds those weights, or where predict would find them),
the model's resolution, tapped blocks and any departure from the paper, the
training settings, whether training finished, the epoch kept by
--select-on-valid, and the label threshold with what it was chosen on.
Reads only the checkpoint's header; of the weights, only their digest,
computed once and then remembered. Nothing is loaded.

--json prints the description as madclip reads it, for scripts: validated,
with the key names of older versions in their current form, fields madclip
does not know left out, and invisible characters as \u escapes.

Examples:
  madclip inspect brain.safetensors
  madclip inspect --json brain.safetensors | jq .threshold`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the checkpoint's description as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("inspect: give one CHECKPOINT (see madclip inspect --help)")
			}
			path := c.Args().First()
			if path == "" {
				return fmt.Errorf("inspect: the CHECKPOINT name is empty")
			}
			m, err := checkpoint.ReadMeta(path)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			if c.Bool("json") {
				b, err := marshalJSON(m, "  ")
				if err == nil {
					_, err = fmt.Fprintln(c.App.Writer, string(b))
				}
				return err
			}
			var unresumable error
			if m.Partial() {
				unresumable = checkpoint.Resumable(path, m)
			}
			describeCheckpoint(c.App.Writer, path, m, unresumable)
			return nil
		},
	}
}

// lineFunc writes one line of a description under key ("" continues the
// line before).
type lineFunc func(key, format string, args ...any)

// describeCheckpoint writes m in words, one aspect a line. Every string
// the file holds goes through oneLine: an edited file cannot steer the
// terminal or forge a line. unresumable says why an unfinished run cannot
// be continued (nil when it can).
func describeCheckpoint(w io.Writer, path string, m checkpoint.Meta, unresumable error) {
	line := lineFunc(func(key, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", key, fmt.Sprintf(format, args...))
	})
	by := ""
	if m.WrittenBy != "" {
		by = ", written by " + oneLine(m.WrittenBy)
	}
	fmt.Fprintf(w, "%s: a madclip checkpoint (format %s%s)\n", oneLine(path), oneLine(m.Version), by)
	score := "the detection score (trained without masks)"
	if m.Masks {
		score = "the anomaly map's maximum (trained with masks)"
	}
	object := fmt.Sprintf("object word %q", m.Model.Object)
	if m.Model.GenericObject {
		object = fmt.Sprintf("prompts say %q (ablation: generic object word; the dataset's is %q)", model.GenericObjectWord, m.Model.Object)
	}
	line("dataset", "%s, %s; image score: %s", oneLine(m.Dataset), object, score)
	describeShots(line, m)
	describeBackbone(line, m, path)
	describeModel(line, m)
	describeTraining(line, path, m, unresumable)
	describeThreshold(line, m)
}

// describeShots writes how the shots were chosen and which they are.
func describeShots(line lineFunc, m checkpoint.Meta) {
	if m.Imported != nil {
		line("shots", "%s per class, as given to madclip import (which images, and how chosen, not recorded)", plural.Of(m.Shots, "shot"))
		return
	}
	how := fmt.Sprintf("drawn with seed %d", m.Seed)
	if f := string(m.ShotsFile); f != "" {
		how = "from " + oneLine(f)
		if m.ShotsIndex > 0 {
			how += fmt.Sprintf(" (list %d)", m.ShotsIndex)
		}
		if strings.HasPrefix(f, "authors:") {
			how = "the authors' list " + oneLine(f)
		}
	}
	line("shots", "%s per class, %s", plural.Of(m.Shots, "shot"), how)
	if s := m.ShotImages; s != nil {
		line("", "normal:   %s", listSome(s.Normal, 4))
		line("", "abnormal: %s", listSome(s.Abnormal, 4))
	}
}

// describeModel writes the resolution, the tapped blocks and what departs
// from the paper.
func describeModel(line lineFunc, m checkpoint.Meta) {
	departures := m.Model.Departures()
	if paper := model.DefaultLayers(m.Backbone.Config.VisionLayers); !slices.Equal(m.Model.Layers, paper) {
		departures = append([]string{"blocks other than the paper's " + joinInts(paper, ", ")}, departures...)
	}
	what := "as the paper"
	if len(departures) > 0 {
		what = strings.Join(departures, ", ")
	}
	line("model", "%d px, blocks %s tapped; %s", m.Model.ImageSize, joinInts(m.Model.Layers, ", "), what)
}

// describeTraining writes the run's settings, whether it finished (and how
// to continue it if not), and the epoch selection kept.
func describeTraining(line lineFunc, path string, m checkpoint.Meta, unresumable error) {
	// An unfinished run whose data has moved needs --data to go on.
	dataGone := m.Partial() && m.Training != nil && !isDir(dataset.Dir(string(m.Training.Data), m.Dataset))
	switch t := m.Training; {
	case m.Imported != nil:
		line("training", "elsewhere: imported from %s (%s, SHA-256 %s)", oneLine(string(m.Imported.File)), oneLine(m.Imported.Format), oneLine(m.Imported.SHA256))
	case t != nil:
		loss := ""
		if t.SoftmaxLoss {
			loss = ", ablation: softmax loss"
		}
		line("training", "%s, batch %d, Adam lr %g betas (%g, %g)%s", plural.Of(m.Epochs, "epoch"), t.Batch, t.LR, t.Beta1, t.Beta2, loss)
		where := ""
		if dataGone {
			where = " (not there now: resuming needs --data where it is)"
		}
		line("", "data %s%s", oneLine(string(t.Data)), where)
	default:
		line("training", "%s (other settings not recorded)", plural.Of(m.Epochs, "epoch"))
	}
	switch {
	case m.Imported != nil:
	case m.Partial():
		if unresumable != nil {
			line("status", "unfinished: interrupted at %s; it cannot be resumed: %s", m.StoppedAt(), oneLine(unresumable.Error()))
			break
		}
		data := ""
		if dataGone {
			data = " --data WHERE-THE-DATA-IS-NOW"
		}
		line("status", "unfinished: interrupted at %s; continue it with madclip train --resume %s%s", m.StoppedAt(), shellquote.Path(path), data)
	default:
		status := "finished"
		if m.Elapsed > 0 {
			status += " in " + roughly(time.Duration(m.Elapsed*float64(time.Second)))
		}
		line("status", "%s", status)
	}
	if m.SelectedEpoch > 0 {
		kept := fmt.Sprintf("kept epoch %d of %d", m.SelectedEpoch, m.Epochs)
		if m.Partial() {
			kept = fmt.Sprintf("best so far epoch %d (%d of %d done)", m.SelectedEpoch, m.Epoch, m.Epochs)
		}
		if m.ValidAUROC != nil {
			kept += fmt.Sprintf(", valid image AUROC %.2f%%", 100**m.ValidAUROC)
		}
		if m.ValidPixelAUROC != nil {
			kept += fmt.Sprintf(", pixel AUROC %.2f%%", 100**m.ValidPixelAUROC)
		}
		if h := m.SelectedOn; h != nil {
			kept += fmt.Sprintf(", on %d normal and %d abnormal held-out valid images", h.Normal, h.Abnormal)
		}
		line("selection", "%s", kept)
	}
}

// describeBackbone writes the frozen CLIP and, for weights, whether the
// recorded file still holds them, or which file predict would take.
func describeBackbone(line lineFunc, m checkpoint.Meta, path string) {
	b := m.Backbone
	arch := b.Config.Name()
	if b.Preset != "" {
		if arch != b.Preset {
			arch = " (" + arch + ")"
		} else {
			arch = ""
		}
		line("backbone", "the %s preset's random weights, seed %d%s", b.Preset, b.Seed, arch)
		return
	}
	id := "digest " + b.Digest
	if b.Digest == "" {
		id = "file SHA-256 " + b.SHA256
	}
	line("backbone", "CLIP weights, %s; %s", arch, id)
	line("", "file %s (%s)", oneLine(string(b.File)), weightsNow(m, path))
}

// weightsNow says where predict and eval would take the weights a
// checkpoint at path was trained on without --weights (m.WeightsFile: the
// recorded file, or one with the recorded digest in the weights folders or
// beside the checkpoint), and whether the recorded file still holds them.
// A file's digest is remembered once computed, so this reads the weights
// only the first time.
func weightsNow(m checkpoint.Meta, path string) string {
	b := m.Backbone
	file := string(b.File)
	st, statErr := os.Stat(file)
	if b.Digest == "" && statErr != nil {
		return "not there now: give the weights it was trained on with --weights"
	}
	use, err := m.WeightsFile(path) // as predict and eval find them
	if err != nil {
		return "not there now, and no file with its digest in " + oneLine(strings.Join(append(weights.Dirs(), filepath.Dir(path)), ", ")) + ": give the weights with --weights"
	}
	if use != file {
		return recordedWeightsState(file) + "; predict and eval will take " + oneLine(use) + ", which holds the same weights"
	}
	if !st.Mode().IsRegular() {
		return recordedWeightsState(file) + ": give the weights with --weights"
	}
	want, got := b.Digest, ""
	if want != "" {
		got, err = weights.Digest(file)
	} else { // a checkpoint from before digests: the file's hash
		want = b.SHA256
		got, err = weights.FileSHA256(file)
	}
	switch {
	case err != nil:
		return "there, but not readable as CLIP weights: " + oneLine(err.Error())
	case got != want:
		return "there, but holding other weights now (" + got[:12] + "…): predict and eval will refuse them; give the ones it was trained on with --weights"
	}
	return "there, the same weights"
}

// recordedWeightsState says what is at the weights file a checkpoint
// records when it is not the weights to use: "not there now", "there, but
// a named pipe, not weights", or "there, but holding other weights now".
func recordedWeightsState(file string) string {
	st, err := os.Stat(file)
	switch {
	case err != nil:
		return "not there now"
	case !st.Mode().IsRegular():
		return "there, but " + regularfile.Kind(st.Mode()) + ", not weights"
	}
	return "there, but holding other weights now"
}

// describeThreshold writes the label threshold and what it was chosen on.
func describeThreshold(line lineFunc, m checkpoint.Meta) {
	if m.Threshold == 0 && m.Partial() && m.Imported == nil {
		line("threshold", "none yet: training chooses it on the held-out valid images when it finishes")
		return
	}
	if m.Threshold == 0 {
		line("threshold", "none: %s", m.ThresholdOrigin())
		return
	}
	th := fmt.Sprintf("%s, %s", metrics.FormatThreshold(m.Threshold), m.ThresholdOrigin())
	if c := m.Calibration; c != nil {
		th += fmt.Sprintf(" (image AUROC there %.2f%%)", 100*c.AUROC)
	}
	if m.ThresholdYouden > 0 {
		th += "; Youden point " + metrics.FormatThreshold(m.ThresholdYouden)
	}
	line("threshold", "%s", th)
}

// listSome lists up to n names, then how many there are in all.
func listSome(names []string, n int) string {
	quoted := make([]string, 0, min(n, len(names)))
	for _, s := range names[:min(n, len(names))] {
		quoted = append(quoted, oneLine(s))
	}
	out := strings.Join(quoted, ", ")
	if len(names) > n {
		out += fmt.Sprintf(", … (%d in all)", len(names))
	}
	return out
}
