package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/infer"
	"madclip/internal/cliptest"
	"madclip/metrics"
	"madclip/model"
	"madclip/torch"
	"madclip/torch/safetensors"
)

func smallConfig(t *testing.T, root string) Config {
	t.Helper()
	return Config{Data: root, Dataset: "Brain", Shots: 2, Seed: 3, Epochs: 2, Batch: 16, Preset: "tiny", BackboneSeed: 1,
		Model: model.Options{ImageSize: 56}, Out: filepath.Join(t.TempDir(), "ck.safetensors")}
}

func synth(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 2, Valid: 4, Test: 2, Size: 32}); err != nil {
		t.Fatal(err)
	}
	return root
}

// run trains with c and checks that the run, finished or failed, leaves no
// tensor behind.
func run(t *testing.T, ctx context.Context, c Config, rep Reporter) (*Result, error) {
	t.Helper()
	var res *Result
	var leaked int64
	err := torch.Do(func() error {
		before := torch.LiveTensors()
		var err error
		res, err = Run(ctx, c, tokenizer(t), rep)
		leaked = torch.LiveTensors() - before
		return err
	})
	if leaked != 0 {
		t.Errorf("the run left %d tensors alive (error: %v)", leaked, err)
	}
	return res, err
}

// readParams reads a checkpoint's trained tensors as raw bytes.
func readParams(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	for _, ts := range f.Tensors {
		if !strings.HasPrefix(ts.Name, "optim.") {
			out[ts.Name] = append([]byte(nil), ts.Data...)
		}
	}
	return out
}

func maxDiff(t *testing.T, a, b map[string][]byte) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d tensors vs %d", len(a), len(b))
	}
	worst := 0.0
	for k, va := range a {
		vb := b[k]
		for i := 0; i+4 <= len(va); i += 4 {
			x := math.Float32frombits(uint32(va[i]) | uint32(va[i+1])<<8 | uint32(va[i+2])<<16 | uint32(va[i+3])<<24)
			y := math.Float32frombits(uint32(vb[i]) | uint32(vb[i+1])<<8 | uint32(vb[i+2])<<16 | uint32(vb[i+3])<<24)
			worst = math.Max(worst, math.Abs(float64(x-y)))
		}
	}
	return worst
}

// Training from the feature cache gives the parameters that recomputing the
// backbone every step gives.
func TestCachedEqualsUncached(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.Epochs = 1
	if _, err := run(t, context.Background(), c, &quietReporter{}); err != nil {
		t.Fatal(err)
	}
	u := c
	u.NoCache = true
	u.Out = filepath.Join(t.TempDir(), "nocache.safetensors")
	if _, err := run(t, context.Background(), u, &quietReporter{}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, readParams(t, c.Out), readParams(t, u.Out)); d > 1e-5 {
		t.Errorf("cached and uncached parameters differ by %g", d)
	}
	// A cache kept in host memory gives the same parameters too.
	h := c
	h.CacheOnHost = true
	h.Out = filepath.Join(t.TempDir(), "host.safetensors")
	if _, err := run(t, context.Background(), h, &quietReporter{}); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, readParams(t, c.Out), readParams(t, h.Out)); d != 0 {
		t.Errorf("host-cached parameters differ by %g", d)
	}
}

// cancelAfter cancels the context after n steps (as Ctrl-C does).
type cancelAfter struct {
	quietReporter
	n      int
	cancel context.CancelFunc
}

func (r *cancelAfter) Step(int, int, float64) {
	r.n--
	if r.n == 0 {
		r.cancel()
	}
}

// An interrupted run saves a partial checkpoint; resuming it gives exactly
// the parameters of an uninterrupted run (on the CPU).
func TestInterruptAndResume(t *testing.T) {
	root := synth(t)
	full := smallConfig(t, root)
	fullRep := &quietReporter{}
	if _, err := run(t, context.Background(), full, fullRep); err != nil {
		t.Fatal(err)
	}
	part := smallConfig(t, root)
	var partElapsed float64
	interrupt(t, part, 3, func(ck *checkpoint.Checkpoint) {
		if !ck.Meta.Partial() || ck.Meta.Epoch != 0 || ck.Meta.Step != 3 { // 4 steps an epoch
			t.Errorf("partial checkpoint at epoch %d step %d (partial %v)", ck.Meta.Epoch, ck.Meta.Step, ck.Meta.Partial())
		}
		partElapsed = ck.Meta.Elapsed
		if !(ck.Meta.EpochLossSum > 0) || ck.Meta.EpochLossSteps != 3 || !(partElapsed > 0) {
			t.Errorf("partial checkpoint: loss sum %v over %d steps, elapsed %v s", ck.Meta.EpochLossSum, ck.Meta.EpochLossSteps, partElapsed)
		}
	})
	// Only the checkpoint is given: its data, dataset, backbone, epochs and
	// every other setting come from it (flags that differ are ignored here;
	// the command line refuses them).
	if err := os.Link(part.Out, part.Out+".before-resume"); err != nil {
		t.Fatal(err)
	}
	resumed := Config{Resume: part.Out, Out: part.Out, Seed: 99, Epochs: 60, Batch: 3, LR: 0.5, Model: model.Options{ImageSize: 240}}
	resumedRep := &quietReporter{}
	res, err := run(t, context.Background(), resumed, resumedRep)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(t, readParams(t, full.Out), readParams(t, resumed.Out)); d != 0 {
		t.Errorf("resumed run differs from the uninterrupted one by %g", d)
	}
	if !slices.Contains(resumedRep.stages, "resuming at epoch 1 of 2, after step 3 of 4 (5 steps left)") {
		t.Errorf("resume not announced where it starts: %q", resumedRep.stages)
	}
	// Each epoch's mean loss is the uninterrupted run's, the interrupted
	// epoch's included (over all its steps, not only those after the
	// resume); the time counts both starts.
	if !slices.EqualFunc(fullRep.losses, resumedRep.losses, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
		t.Errorf("epoch losses %v, uninterrupted %v", resumedRep.losses, fullRep.losses)
	}
	if m := res.Meta; m.Steps != 0 || m.Epoch != m.Epochs || m.Step != 0 || m.EpochLossSteps != 0 {
		t.Errorf("the finished checkpoint keeps resume state: %+v", m)
	}
	if m := res.Meta.Elapsed; m <= partElapsed || m > res.TotalTime.Seconds() {
		t.Errorf("total %v after %v s before the interruption; recorded %v s", res.TotalTime, partElapsed, res.Meta.Elapsed)
	}
	// A partial checkpoint from 0.2.1 lacks the epoch's loss sum: the
	// interrupted epoch's mean is then over the steps after the resume
	// (here the last one), as that version reported it.
	old := filepath.Join(t.TempDir(), "old.safetensors")
	downgrade(t, part.Out+".before-resume", old)
	oldRep := &quietReporter{}
	if _, err := run(t, context.Background(), Config{Resume: old, Out: old}, oldRep); err != nil {
		t.Fatal(err)
	}
	if len(oldRep.steps) != 5 || math.Abs(oldRep.losses[0]-oldRep.steps[0]) > 1e-12 || math.Abs(oldRep.losses[0]-fullRep.losses[0]) < 1e-9 {
		t.Errorf("0.2.1 resume: epoch means %v, steps %v", oldRep.losses, oldRep.steps)
	}

	// A finished checkpoint cannot be resumed.
	again := resumed
	if _, err := run(t, context.Background(), again, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "already finished") {
		t.Errorf("resume of a finished run: %v", err)
	}
}

// A run selecting its epoch on held-out images, interrupted and resumed,
// keeps the epoch and parameters the uninterrupted run keeps: the partial
// checkpoint carries the best epoch so far.
func TestResumeKeepsSelection(t *testing.T) {
	root := synth(t)
	full := smallConfig(t, root)
	full.SelectOnValid, full.Epochs = true, 4
	want, err := run(t, context.Background(), full, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	part := smallConfig(t, root)
	part.SelectOnValid, part.Epochs = true, 4
	interrupt(t, part, 9, func(ck *checkpoint.Checkpoint) { // 4 steps an epoch: in epoch 3
		if m := ck.Meta; m.Epoch != 2 || m.SelectedEpoch < 1 || m.SelectedEpoch > 2 || m.ValidAUROC == nil || m.ValidPixelAUROC == nil {
			t.Errorf("partial checkpoint: epoch %d done, best %d (AUROCs %v, %v)", m.Epoch, m.SelectedEpoch, m.ValidAUROC, m.ValidPixelAUROC)
		}
		if _, ok := ck.Tensors[checkpoint.SelectedPrefix+"prompts.normal"]; !ok {
			t.Error("the partial checkpoint lacks the best epoch's parameters")
		}
	})
	// The data moved in between: without --data the run says where it
	// looked; with it, it goes on there and records the new place.
	movedRoot := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(root, movedRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, context.Background(), Config{Resume: part.Out, Out: part.Out}, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "the data this run trained on is not there (no folder "+filepath.Join(root, "Brain_AD")+")") {
		t.Fatalf("resumed without its data: %v", err)
	}
	// One held-out image fewer there: selection would compare the epochs'
	// AUROCs over other images, so the run refuses.
	meta, err := checkpoint.ReadMeta(part.Out)
	if err != nil || meta.SelectedOn == nil {
		t.Fatalf("the partial checkpoint records no held-out set: %v", err)
	}
	goodDir := filepath.Join(movedRoot, "Brain_AD", "valid", "good", "img")
	entries, _ := os.ReadDir(goodDir)
	var aside string
	for _, e := range entries {
		if !slices.Contains(meta.ShotImages.Normal, e.Name()) {
			aside = e.Name()
			break
		}
	}
	kept := filepath.Join(t.TempDir(), aside)
	if err := os.Rename(filepath.Join(goodDir, aside), kept); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, context.Background(), Config{Resume: part.Out, Out: part.Out, Data: movedRoot}, &quietReporter{}); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("(%d normal, %d abnormal) are not those the run selected its epochs on (%d normal, %d abnormal;", meta.SelectedOn.Normal-1, meta.SelectedOn.Abnormal, meta.SelectedOn.Normal, meta.SelectedOn.Abnormal)) {
		t.Fatalf("resumed on another held-out set: %v", err)
	}
	if err := os.Rename(kept, filepath.Join(goodDir, aside)); err != nil {
		t.Fatal(err)
	}
	// The same names, one file changed: refused too.
	orig, _ := os.ReadFile(filepath.Join(goodDir, aside))
	os.WriteFile(filepath.Join(goodDir, aside), append(slices.Clone(orig), 0), 0o644)
	if _, err := run(t, context.Background(), Config{Resume: part.Out, Out: part.Out, Data: movedRoot}, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "or one of them changed") {
		t.Fatalf("resumed on a changed held-out image: %v", err)
	}
	os.WriteFile(filepath.Join(goodDir, aside), orig, 0o644)
	got, err := run(t, context.Background(), Config{Resume: part.Out, Out: part.Out, Data: movedRoot}, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	if d := string(got.Meta.Training.Data); d != movedRoot {
		t.Errorf("resumed run records its data at %s, want %s", d, movedRoot)
	}
	if g, w := got.Meta, want.Meta; g.SelectedEpoch != w.SelectedEpoch || *g.ValidAUROC != *w.ValidAUROC || *g.ValidPixelAUROC != *w.ValidPixelAUROC {
		t.Errorf("resumed run kept epoch %d (AUROCs %v, %v), uninterrupted %d (%v, %v)", g.SelectedEpoch, *g.ValidAUROC, *g.ValidPixelAUROC, w.SelectedEpoch, *w.ValidAUROC, *w.ValidPixelAUROC)
	}
	if d := maxDiff(t, readParams(t, full.Out), readParams(t, part.Out)); d != 0 {
		t.Errorf("resumed run's parameters differ from the uninterrupted one's by %g", d)
	}
	t.Logf("selected epoch %d of 4", want.Meta.SelectedEpoch)
}

// interrupt runs c until it has taken steps steps, stops it as Ctrl-C
// would, and hands the partial checkpoint it saved to check.
func interrupt(t *testing.T, c Config, steps int, check func(*checkpoint.Checkpoint)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := run(t, ctx, c, &cancelAfter{n: steps, cancel: cancel}); !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("interrupt: %v", err)
	}
	loaded(t, c.Out, check)
}

// loaded loads the checkpoint at path for check.
func loaded(t *testing.T, path string, check func(*checkpoint.Checkpoint)) {
	t.Helper()
	err := torch.Do(func() error {
		ck, err := checkpoint.Load(path, torch.CPU)
		if err != nil {
			return err
		}
		defer ck.Free()
		check(ck)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// downgrade writes the partial checkpoint in as 0.2.1 wrote it: without the
// unfinished epoch's loss sum.
func downgrade(t *testing.T, in, out string) {
	t.Helper()
	f, err := safetensors.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var meta map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["madclip"]), &meta); err != nil {
		t.Fatal(err)
	}
	meta["version"] = "0.2.1"
	delete(meta, "epoch_loss_sum")
	delete(meta, "epoch_loss_steps")
	js, _ := json.Marshal(meta)
	md := maps.Clone(f.Metadata)
	md["madclip"] = string(js)
	if err := safetensors.WriteFile(out, f.Tensors, md); err != nil {
		t.Fatal(err)
	}
}

// A 0.2.1 partial checkpoint resumed and stopped again in the same epoch:
// the new checkpoint's sum covers only the steps since the resume, and says
// so, so that a third start does not average over steps it never saw.
func TestResumeOldTwice(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := run(t, ctx, c, &cancelAfter{n: 1, cancel: cancel}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("first stop: %v", err)
	}
	old := filepath.Join(t.TempDir(), "old.safetensors")
	downgrade(t, c.Out, old)
	ctx, cancel = context.WithCancel(context.Background())
	rep := &cancelAfter{n: 1, cancel: cancel}
	if _, err := run(t, ctx, Config{Resume: old, Out: old}, rep); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("second stop: %v", err)
	}
	err := torch.Do(func() error {
		ck, err := checkpoint.Load(old, torch.CPU)
		if err != nil {
			return err
		}
		defer ck.Free()
		if m := ck.Meta; m.Epoch != 0 || m.Step != 2 || m.EpochLossSteps != 1 || m.Version != checkpoint.Version {
			t.Errorf("second stop at epoch %d step %d, loss sum over %d steps, version %s", m.Epoch, m.Step, m.EpochLossSteps, m.Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	third := &quietReporter{}
	if _, err := run(t, context.Background(), Config{Resume: old, Out: old}, third); err != nil {
		t.Fatal(err)
	}
	// Epoch 1's mean: the step after the first resume and the two after
	// the second (4 steps an epoch, stops after steps 1 and 2).
	if len(third.steps) != 6 || len(third.losses) != 2 {
		t.Fatalf("third start: %d steps, %d epochs", len(third.steps), len(third.losses))
	}
}

// A diverging loss stops training with a clear error and saves nothing:
// resumed, the run would diverge again, and the file at Out (perhaps a
// finished model) is kept.
func TestNaNStops(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.LR = 1e30
	if err := os.WriteFile(c.Out, []byte("an earlier model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, context.Background(), c, &quietReporter{})
	var le *LossError
	if !errors.As(err, &le) || le.Epoch != 1 || le.Step < 1 || !strings.Contains(err.Error(), "nothing was saved") {
		t.Fatalf("want a NaN/Inf loss error, got %v", err)
	}
	if b, _ := os.ReadFile(c.Out); string(b) != "an earlier model" {
		t.Errorf("%s replaced by a diverged run: %q", c.Out, b)
	}
}

func TestRunErrors(t *testing.T) {
	root := synth(t)
	for name, mutate := range map[string]func(*Config){
		"no dataset":   func(c *Config) { c.Dataset = "Liver" },
		"no object":    func(c *Config) { c.Dataset = "Knee"; c.Model.Object = "" },
		"too many":     func(c *Config) { c.Shots = 50 },
		"bad preset":   func(c *Config) { c.Preset = "huge" },
		"no weights":   func(c *Config) { c.Preset = "" },
		"bad resume":   func(c *Config) { c.Resume = filepath.Join(root, "none.safetensors") },
		"missing list": func(c *Config) { c.ShotsFile = filepath.Join(root, "none.txt") },
	} {
		c := smallConfig(t, root)
		mutate(&c)
		if _, err := run(t, context.Background(), c, &quietReporter{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Asking for more shots than the valid split holds names the folder and
// the most it can give.
func TestTooManyShots(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.Shots = 50
	valid, err := dataset.ReadSplit(root, "Brain", "valid")
	if err != nil {
		t.Fatal(err)
	}
	n, a := dataset.Counts(valid.Samples)
	_, err = run(t, context.Background(), c, &quietReporter{})
	if err == nil || !strings.Contains(err.Error(), valid.Dir+": ") || !strings.Contains(err.Error(), fmt.Sprintf("give --shots %d or fewer", min(n, a))) {
		t.Errorf("50 shots of %d normal and %d abnormal: %v", n, a, err)
	}
}

// stageLog records the stages a run reports.
type stageLog struct {
	quietReporter
	stages []string
}

func (l *stageLog) Stage(s string) { l.stages = append(l.stages, s) }
func (l *stageLog) Warn(s string)  { l.stages = append(l.stages, "warning: "+s) }

// Abnormal shots whose masks mark nothing (0/1 masks read as empty) are
// named in a warning; marked ones pass silently.
func TestWarnEmptyMasks(t *testing.T) {
	log := &stageLog{}
	r := &trainingRun{rep: log}
	samples := []dataset.Sample{{MaskPath: "m/a.png"}, {MaskPath: "m/b.png"}}
	r.warnEmptyMasks(samples, []dataset.Image{{Mask: []float32{0, 1}}, {Mask: []float32{0, 1}}})
	if len(log.stages) != 0 {
		t.Errorf("marked masks: %q", log.stages)
	}
	r.warnEmptyMasks(samples, []dataset.Image{{Mask: []float32{0, 1}}, {Mask: []float32{0, 0}}})
	if len(log.stages) != 1 || !strings.Contains(log.stages[0], "1 of the 2 abnormal shots have a mask that marks nothing (e.g. m/b.png)") || !strings.Contains(log.stages[0], "0/1") {
		t.Errorf("an empty mask: %q", log.stages)
	}
}

// A resumed run refuses shots other than those it started on (a draw
// changes when the valid folder does).
func TestResumeOnOtherShots(t *testing.T) {
	was := &checkpoint.ShotImages{Normal: []string{"a.png", "b.png"}, Abnormal: []string{"c.png", "d.png"}}
	r := &trainingRun{c: &Config{}, resume: &checkpoint.Checkpoint{Path: "run.safetensors", Meta: checkpoint.Meta{ShotImages: was}}}
	same := dataset.Shots{Normal: []string{"a.png", "b.png"}, Abnormal: []string{"c.png", "d.png"}}
	samples := []dataset.Sample{{Path: "v/a.png"}, {Path: "v/b.png"}, {Path: "v/c.png", MaskPath: "m/c.png"}, {Path: "v/d.png"}}
	digests := []string{"1", "2", "3", "4"}
	if err := r.sameShots(same, samples, digests); err != nil {
		t.Errorf("same shots refused: %v", err)
	}
	// The same names, and a file with other bytes: it is named.
	was.SHA256 = []string{"1", "2", "3", "4"}
	if err := r.sameShots(same, samples, digests); err != nil {
		t.Errorf("same shots and files refused: %v", err)
	}
	if err := r.sameShots(same, samples, []string{"1", "2", "9", "4"}); err == nil || !strings.Contains(err.Error(), "run.safetensors: the shot v/c.png (or its mask m/c.png) has changed") {
		t.Errorf("changed files: %v", err)
	}
	if err := r.sameShots(same, samples, []string{"1", "9", "3", "4"}); err == nil || !strings.Contains(err.Error(), "run.safetensors: the shot v/b.png has changed") {
		t.Errorf("a changed shot without a mask: %v", err)
	}
	err := r.sameShots(dataset.Shots{Normal: []string{"a.png", "x.png"}, Abnormal: []string{"c.png", "d.png"}}, samples, digests)
	if err == nil || !strings.Contains(err.Error(), "run.safetensors") || !strings.Contains(err.Error(), "normal a.png b.png") || !strings.Contains(err.Error(), "normal a.png x.png") {
		t.Errorf("other shots: %v", err)
	}
	// A checkpoint from before the names were recorded is taken on trust.
	r.resume.Meta.ShotImages = nil
	if err := r.sameShots(dataset.Shots{Normal: []string{"z.png"}}, samples[:1], digests[:1]); err != nil {
		t.Errorf("old checkpoint: %v", err)
	}
}

// --select-on-valid keeps the best epoch on held-out valid images and
// records it; the test split is never read.
func TestSelectOnValid(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.SelectOnValid = true
	c.Epochs = 3
	// Remove the test split: selection must not need it.
	if err := os.RemoveAll(filepath.Join(root, "Brain_AD", "test")); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, context.Background(), c, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.SelectedEpoch < 1 || res.Meta.SelectedEpoch > 3 || res.Meta.ValidAUROC == nil {
		t.Errorf("selected epoch %d, valid AUROC %v", res.Meta.SelectedEpoch, res.Meta.ValidAUROC)
	}
	if th := res.Meta.Threshold; !(th > 0 && th <= 1) {
		t.Errorf("threshold %v outside (0, 1]", th)
	}
	// With every abnormal valid image a shot there is nothing to select on
	// (synthetic Brain has 22, the names of the authors' lists).
	c2 := smallConfig(t, root)
	c2.SelectOnValid = true
	c2.Shots, c2.DrawShots = 22, true
	if _, err := run(t, context.Background(), c2, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "select-on-valid") {
		t.Errorf("no held-out images: %v", err)
	}
}

// With masks, --select-on-valid keeps the epoch of the largest image +
// pixel AUROC on the held-out valid images (the authors' criterion, on the
// test split in their code), and the AUROCs it records are the ones
// predict's code gives for the kept model on those images.
func TestSelectOnValidPixels(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.SelectOnValid, c.Epochs = true, 4
	rep := &quietReporter{}
	res, err := run(t, context.Background(), c, rep)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	if !m.Masks || m.ValidAUROC == nil || m.ValidPixelAUROC == nil {
		t.Fatalf("masks %v, valid AUROCs %v, %v", m.Masks, m.ValidAUROC, m.ValidPixelAUROC)
	}
	// Each epoch's line gives both AUROCs; the kept epoch has the largest
	// sum (to the lines' precision).
	epochLine := regexp.MustCompile(`^epoch (\d+): valid image AUROC ([\d.]+)%, pixel AUROC ([\d.]+)% \((the best so far|best: epoch \d+, )`)
	sums := map[int]float64{}
	for _, st := range rep.stages {
		if g := epochLine.FindStringSubmatch(st); g != nil {
			e, _ := strconv.Atoi(g[1])
			img, _ := strconv.ParseFloat(g[2], 64)
			px, _ := strconv.ParseFloat(g[3], 64)
			sums[e] = img + px
		}
	}
	if len(sums) != 4 {
		t.Fatalf("%d epoch lines with both AUROCs in %q", len(sums), rep.stages)
	}
	for e, sum := range sums {
		if sum > sums[m.SelectedEpoch]+0.02 {
			t.Errorf("kept epoch %d (%.2f), but epoch %d scored %.2f", m.SelectedEpoch, sums[m.SelectedEpoch], e, sum)
		}
	}
	// The kept model, run by predict's code over the held-out images.
	_, heldOut := heldOutOfTwoShots(t, root)
	var scores, maps []float32
	var labels, pixels []bool
	err = torch.Do(func() error {
		p, err := infer.Open(c.Out, "", tokenizer(t), torch.CPU)
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Stream(heldOut, infer.StreamOptions{Masks: true}, func(d dataset.Decoded, r infer.Result) error {
			scores, labels = append(scores, float32(r.Score)), append(labels, d.Sample.Abnormal)
			maps = append(maps, r.Map...)
			for _, v := range d.Image.Mask {
				pixels = append(pixels, v > 0.5)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if img, px := auroc(t, scores, labels), auroc(t, maps, pixels); math.Abs(img-*m.ValidAUROC) > 1e-6 || math.Abs(px-*m.ValidPixelAUROC) > 1e-6 {
		t.Errorf("recorded valid AUROCs %v, %v; predict's code gives %v, %v", *m.ValidAUROC, *m.ValidPixelAUROC, img, px)
	}
	// Held-out masks that mark nothing leave the image AUROC alone, said
	// in a warning; the shots' masks still train the segmentation head.
	blank := synth(t)
	list, err := dataset.OpenShots(dataset.AuthorsShotsName("Brain", 2), 0)
	if err != nil {
		t.Fatal(err)
	}
	maskDir := filepath.Join(blank, "Brain_AD", "valid", "Ungood", "anomaly_mask")
	entries, err := os.ReadDir(maskDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if slices.Contains(list.Abnormal, e.Name()) {
			continue
		}
		var black bytes.Buffer
		if err := png.Encode(&black, image.NewGray(image.Rect(0, 0, 32, 32))); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(maskDir, e.Name()), black.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cb := smallConfig(t, blank)
	cb.SelectOnValid, cb.Epochs = true, 2
	log := &stageLog{}
	res, err = run(t, context.Background(), cb, log)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Meta.Masks || res.Meta.ValidPixelAUROC != nil || res.Meta.ValidAUROC == nil ||
		!slices.Contains(log.stages, "warning: the masks of the held-out valid images mark nothing: the epoch is selected on image AUROC alone") {
		t.Errorf("blank held-out masks: masks %v, valid AUROCs %v, %v; %q", res.Meta.Masks, res.Meta.ValidAUROC, res.Meta.ValidPixelAUROC, log.stages)
	}
	// A model trained without masks selects on image AUROC alone.
	c2 := smallConfig(t, root)
	c2.SelectOnValid, c2.Epochs, c2.Dataset = true, 2, "Chest"
	res, err = run(t, context.Background(), c2, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Masks || res.Meta.ValidPixelAUROC != nil || res.Meta.ValidAUROC == nil || res.Meta.SelectedEpoch < 1 {
		t.Errorf("without masks: masks %v, valid pixel AUROC %v, selected %d", res.Meta.Masks, res.Meta.ValidPixelAUROC, res.Meta.SelectedEpoch)
	}
}

// The checkpoint records whether training had masks; prediction scores by
// the map's maximum only then.
func TestMetaRecordsMasks(t *testing.T) {
	root := synth(t)
	for name, want := range map[string]bool{"Brain": true, "Chest": false} {
		c := smallConfig(t, root)
		c.Dataset, c.Epochs, c.Model.Object = name, 1, ""
		res, err := run(t, context.Background(), c, &quietReporter{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Meta.Masks != want {
			t.Errorf("%s: masks %v, want %v", name, res.Meta.Masks, want)
		}
	}
}

// The shots of a benchmark dataset are the authors' list unless drawn;
// other counts are drawn with the seed, and recorded as drawn. The run reports cos(t_n, t_ab).
func TestShotsChoice(t *testing.T) {
	root := synth(t)
	for _, c := range []struct {
		shots    int
		draw     bool
		wantFile string
	}{
		{2, false, "authors:Brain/my2-shot.txt"},
		{2, true, ""},
		{3, false, ""},
	} {
		cfg := smallConfig(t, root)
		cfg.Epochs, cfg.Shots, cfg.DrawShots = 1, c.shots, c.draw
		res, err := run(t, context.Background(), cfg, &quietReporter{})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Meta.ShotsFile) != c.wantFile || res.Meta.Shots != c.shots {
			t.Errorf("%d shots, draw %v: recorded %q, %d shots", c.shots, c.draw, res.Meta.ShotsFile, res.Meta.Shots)
		}
		// Drawn shots are recorded as drawn, asked for or not.
		if drawn := res.Meta.Training.DrawShots; drawn != (c.wantFile == "") {
			t.Errorf("%d shots, draw %v: recorded as drawn %v", c.shots, c.draw, drawn)
		}
		// The checkpoint names the images, whichever way they were chosen.
		var want dataset.Shots
		if c.wantFile != "" {
			want, err = dataset.AuthorsShots("Brain", c.shots)
		} else {
			var valid *dataset.Split
			if valid, err = dataset.ReadSplit(root, "Brain", "valid"); err == nil {
				want, err = dataset.DrawShots(valid.Samples, c.shots, cfg.Seed)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if si := res.Meta.ShotImages; si == nil || !slices.Equal(si.Normal, want.Normal) || !slices.Equal(si.Abnormal, want.Abnormal) {
			t.Errorf("%d shots, draw %v: recorded shot images %+v, want %+v", c.shots, c.draw, si, want)
		}
		if !(res.TextCosine > -1 && res.TextCosine < 1) {
			t.Errorf("cos(t_n, t_ab) %v", res.TextCosine)
		}
	}
	// The authors' list names images of their release; on other data it
	// says how to draw instead.
	other := t.TempDir()
	if err := dataset.Synth(other, dataset.SynthOptions{Seed: 2, Valid: 4, Test: 2, Size: 32, Datasets: []string{"Knee"}}); err != nil {
		t.Fatal(err)
	}
	os.Rename(dataset.Dir(other, "Knee"), dataset.Dir(other, "Liver"))
	cfg := smallConfig(t, other)
	cfg.Dataset = "Liver"
	if _, err := run(t, context.Background(), cfg, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "--draw-shots") {
		t.Errorf("authors' list on other data: %v", err)
	}
}

// A finished checkpoint carries t_n and t_ab (prediction needs no text
// tower); a partial one does not need them.
func TestCheckpointTextFeatures(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.Epochs = 1
	res, err := run(t, context.Background(), c, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(c.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found bool
	for _, ts := range f.Tensors {
		if ts.Name == checkpoint.TextFeaturesKey {
			found = true
			e := int64(res.Meta.Backbone.Config.EmbedDim)
			if len(ts.Shape) != 2 || ts.Shape[0] != 2 || ts.Shape[1] != e {
				t.Errorf("text features shape %v", ts.Shape)
			}
			// Unit rows whose dot product is the reported cosine.
			v := make([]float64, 2*e)
			for i := range v {
				v[i] = float64(math.Float32frombits(uint32(ts.Data[4*i]) | uint32(ts.Data[4*i+1])<<8 | uint32(ts.Data[4*i+2])<<16 | uint32(ts.Data[4*i+3])<<24))
			}
			var n0, n1, dot float64
			for i := range e {
				n0 += v[i] * v[i]
				n1 += v[e+i] * v[e+i]
				dot += v[i] * v[e+i]
			}
			if math.Abs(n0-1) > 1e-5 || math.Abs(n1-1) > 1e-5 || math.Abs(dot-res.TextCosine) > 1e-5 {
				t.Errorf("norms %v %v, dot %v vs cosine %v", n0, n1, dot, res.TextCosine)
			}
		}
	}
	if !found {
		t.Error("no text features in the checkpoint")
	}
}

// A checkpoint in the layout before 0.2 (a context tensor per phrase and
// position) loads into the one-tensor-per-class layout unchanged.
func TestUpgradeOldPromptLayout(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	c.Epochs = 1
	if _, err := run(t, context.Background(), c, &quietReporter{}); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old.safetensors")
	err := torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			ts, md, err := torch.LoadSafetensors(c.Out, torch.CPU, torch.SameDType)
			if err != nil {
				return err
			}
			for _, class := range []string{"normal", "abnormal"} {
				ctx := ts["prompts."+class]
				delete(ts, "prompts."+class)
				for i := range 7 {
					for j, pos := range model.Positions() {
						ts[fmt.Sprintf("prompts.%s.%d.%s", class, i, pos)] = ctx.Select(0, int64(i)).Select(0, int64(j)).Contiguous()
					}
				}
			}
			if err := torch.SaveSafetensors(old, ts, md); err != nil {
				return err
			}
			load := func(path string) ([]float64, error) {
				ck, err := checkpoint.Load(path, torch.CPU)
				if err != nil {
					return nil, err
				}
				defer ck.Free()
				b, _, err := ck.OpenBackbone("", torch.CPU)
				if err != nil {
					return nil, err
				}
				defer b.Free()
				m, err := ck.Model(b, tokenizer(t))
				if err != nil {
					return nil, err
				}
				defer m.Free()
				return m.Prompts.Ctx[1].Float64s()
			}
			a, err := load(c.Out)
			if err != nil {
				return err
			}
			b, err := load(old)
			if err != nil {
				return err
			}
			if !slices.Equal(a, b) {
				t.Error("the upgraded contexts differ")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// heldOutOfTwoShots is synthetic Brain's valid split under root and its
// images that the authors' 2-shot list leaves out: smallConfig's held-out
// images.
func heldOutOfTwoShots(t *testing.T, root string) (*dataset.Split, []dataset.Sample) {
	t.Helper()
	valid, err := dataset.ReadSplit(root, "Brain", "valid")
	if err != nil {
		t.Fatal(err)
	}
	shots, err := dataset.OpenShots(dataset.AuthorsShotsName("Brain", 2), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, heldOut, err := shots.Select(valid.Samples)
	if err != nil {
		t.Fatal(err)
	}
	return valid, heldOut
}

// Training chooses the label threshold on the held-out valid images
// whenever there are some of both classes, without --select-on-valid, and
// the thresholds are the ones the held-out scores give.
func TestThresholdCalibrated(t *testing.T) {
	root := synth(t)
	c := smallConfig(t, root)
	res, err := run(t, context.Background(), c, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Meta
	valid, err := dataset.ReadSplit(root, "Brain", "valid")
	if err != nil {
		t.Fatal(err)
	}
	n, a := dataset.Counts(valid.Samples)
	if m.Calibration == nil || m.Calibration.Normal != n-2 || m.Calibration.Abnormal != a-2 {
		t.Fatalf("calibration %+v, want %d normal and %d abnormal held-out images", m.Calibration, n-2, a-2)
	}
	if !(m.Threshold > 0 && m.Threshold <= 1) || !(m.ThresholdYouden > 0 && m.ThresholdYouden <= 1) || m.SelectedEpoch != 0 {
		t.Errorf("thresholds %v, %v, selected epoch %d", m.Threshold, m.ThresholdYouden, m.SelectedEpoch)
	}
	if !strings.Contains(m.ThresholdOrigin(), fmt.Sprintf("%d normal and %d abnormal held-out", n-2, a-2)) {
		t.Errorf("origin %q", m.ThresholdOrigin())
	}
	// The same held-out images scored by predict's code give the same
	// thresholds: the midpoints of the F1-max and Youden gaps.
	_, heldOut := heldOutOfTwoShots(t, root)
	var scores []float32
	var labels []bool
	err = torch.Do(func() error {
		p, err := infer.Open(c.Out, "", tokenizer(t), torch.CPU)
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Stream(heldOut, infer.StreamOptions{}, func(d dataset.Decoded, r infer.Result) error {
			scores, labels = append(scores, float32(r.Score)), append(labels, d.Sample.Abnormal)
			return nil
		})
	})
	if err != nil || len(scores) != n+a-4 {
		t.Fatalf("%d held-out scores: %v", len(scores), err)
	}
	_, f1th, _ := metrics.F1MaxMidpoint(scores, labels)
	_, jth, _ := metrics.YoudenMidpoint(scores, labels)
	if math.Abs(m.Threshold-float64(f1th)) > 1e-5 || math.Abs(m.ThresholdYouden-float64(jth)) > 1e-5 {
		t.Errorf("thresholds %v, %v; the held-out scores %v give %v, %v", m.Threshold, m.ThresholdYouden, scores, f1th, jth)
	}
	// No held-out abnormal image (every one is a shot): no threshold, said so.
	c2 := smallConfig(t, root)
	c2.Shots, c2.DrawShots = a, true
	res, err = run(t, context.Background(), c2, &quietReporter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Threshold != 0 || res.Meta.Calibration != nil || !strings.Contains(res.Meta.ThresholdOrigin(), "uncalibrated") {
		t.Errorf("without held-out images: threshold %v, origin %q", res.Meta.Threshold, res.Meta.ThresholdOrigin())
	}
}

// A run started on one CLIP cannot be resumed on other weights.
func TestResumeKeepsTheBackbone(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root := synth(t)
	dir := t.TempDir()
	weightsFile := func(name string, seed uint64) string {
		p := filepath.Join(dir, name)
		cliptest.WriteTiny(t, p, seed, torch.Float32)
		return p
	}
	a, b := weightsFile("a.safetensors", 1), weightsFile("b.safetensors", 2)
	c := smallConfig(t, root)
	c.Preset, c.Weights = "", a
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := run(t, ctx, c, &cancelAfter{n: 2, cancel: cancel}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupt: %v", err)
	}
	resumed := Config{Resume: c.Out, Out: c.Out, Weights: b}
	if _, err := run(t, context.Background(), resumed, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "another backbone") {
		t.Errorf("resume on other weights: %v", err)
	}
	// Moved away from where the run recorded them, and nowhere madclip
	// looks: the run says to give them.
	moved := filepath.Join(t.TempDir(), "moved.safetensors")
	if err := os.Rename(a, moved); err != nil {
		t.Fatal(err)
	}
	resumed.Weights = ""
	if _, err := run(t, context.Background(), resumed, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "which are not there, nor in ") || !strings.Contains(err.Error(), "give them with --weights") {
		t.Errorf("resume with the weights moved away: %v", err)
	}
	// Beside the checkpoint, found by their digest; the checkpoint then
	// records where they are now.
	found := filepath.Join(filepath.Dir(c.Out), "found.safetensors")
	if err := os.Rename(moved, found); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	if _, err := run(t, ctx, resumed, &cancelAfter{n: 1, cancel: cancel}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("resume on the weights found by digest, interrupted: %v", err)
	}
	if m, err := checkpoint.ReadMeta(c.Out); err != nil || string(m.Backbone.File) != found {
		t.Errorf("the resumed run's checkpoint records the weights at %s (%v), want %s", m.Backbone.File, err, found)
	}
	// Other weights at the recorded place: said so, with what to do.
	os.Rename(found, found+".kept")
	if err := os.Rename(b, found); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, context.Background(), resumed, &quietReporter{}); err == nil || !strings.Contains(err.Error(), "than those now at "+found) || !strings.Contains(err.Error(), "give the ones it started on with --weights") {
		t.Errorf("resume with other weights at the recorded path: %v", err)
	}
	// With its own weights beside the checkpoint too, the run takes those.
	right := filepath.Join(filepath.Dir(c.Out), "right.safetensors")
	if err := os.Rename(found+".kept", right); err != nil {
		t.Fatal(err)
	}
	if res, err := run(t, context.Background(), resumed, &quietReporter{}); err != nil || string(res.Meta.Backbone.File) != right {
		t.Errorf("resume with other weights at the recorded path and its own beside the checkpoint: %v", err)
	}
}

// TestCorruptWeightsNamed: weights holding NaN, in either tower, are
// refused before training, naming the file and the tensor, not the
// learning rate; nothing is saved.
func TestCorruptWeightsNamed(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root := synth(t)
	dir := t.TempDir()
	for _, name := range []string{"visual.conv1.weight", "token_embedding.weight", "text_projection"} {
		bad := filepath.Join(dir, name+".safetensors")
		cliptest.WriteTinyNaN(t, bad, 1, name)
		c := smallConfig(t, root)
		c.Preset, c.Weights = "", bad
		_, err := run(t, context.Background(), c, &quietReporter{})
		if err == nil || !strings.Contains(err.Error(), "CLIP weights "+bad+": tensor "+name+" holds NaN or infinite values: the file is corrupt") || strings.Contains(err.Error(), "--lr") {
			t.Errorf("NaN in %s: %v", name, err)
		}
		if _, err := os.Stat(c.Out); err == nil {
			t.Errorf("a checkpoint was saved from weights with NaN in %s", name)
		}
	}
}

// TestInterruptBeforeTraining: an interruption during preparation stops
// the run at once, with nothing saved.
func TestInterruptBeforeTraining(t *testing.T) {
	c := smallConfig(t, synth(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := run(t, ctx, c, &quietReporter{})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "nothing was saved") {
		t.Errorf("interrupted before the first step: %v", err)
	}
	if _, err := os.Stat(c.Out); err == nil {
		t.Error("a checkpoint was saved before any training")
	}
	// A resumed run stopped before its first step leaves its checkpoint
	// as it was, and says so.
	interrupt(t, c, 2, func(*checkpoint.Checkpoint) {})
	before, _ := os.ReadFile(c.Out)
	_, err = run(t, ctx, Config{Resume: c.Out, Out: c.Out}, &quietReporter{})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), ": "+c.Out+" is as it was (continue with madclip train --resume "+c.Out+")") {
		t.Errorf("a resumed run interrupted before its first step: %v", err)
	}
	if after, _ := os.ReadFile(c.Out); !bytes.Equal(before, after) {
		t.Error("the resumed checkpoint changed though no step was taken")
	}
}

// A threshold calibrated on few held-out images is said to be rough; one
// on many is not.
func TestWarnFewHeldOut(t *testing.T) {
	few := t.TempDir()
	if err := dataset.Synth(few, dataset.SynthOptions{Seed: 2, Valid: 4, Test: 2, Size: 32, Datasets: []string{"Knee"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		root, name string
		want       bool
	}{{few, "Knee", true}, {synth(t), "Brain", false}} {
		cfg := smallConfig(t, c.root)
		cfg.Epochs, cfg.Dataset, cfg.Model.Object = 1, c.name, "brain"
		log := &stageLog{}
		res, err := run(t, context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		cal := res.Meta.Calibration
		if cal == nil {
			t.Fatalf("%s: no calibration", c.name)
		}
		warned := slices.ContainsFunc(log.stages, func(s string) bool {
			return strings.HasPrefix(s, "warning: ") && strings.Contains(s, fmt.Sprintf("rests on %d normal and %d abnormal held-out valid images only", cal.Normal, cal.Abnormal))
		})
		if warned != c.want || (cal.Normal < fewHeldOut || cal.Abnormal < fewHeldOut) != c.want {
			t.Errorf("%s, %d normal and %d abnormal held out: warned %v, want %v", c.name, cal.Normal, cal.Abnormal, warned, c.want)
		}
	}
}
