// Command peer is madclip's side of scripts/bench_peer.sh: the same work as
// the PyTorch peer in bench/peer/peer.py (a MadCLIP training step from
// cached features, the image tower's forward, feature caching, prediction
// over a folder), run on request so that the two processes can take turns.
//
// Protocol, one line each way: "setup TASK [ARG]" → "ready"; "run TASK" →
// "done SECONDS PEAK_RSS_KB" (the peak resident memory during the run);
// "free TASK" → "freed"; "quit". Failures answer "error MESSAGE".
package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/infer"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/train"
)

// task is one kind of work: prepared once, then run and timed repeatedly.
type task interface {
	setup(arg string) error
	run() error
	free()
}

func main() {
	tasks := map[string]task{
		"step-tiny": &stepTask{preset: "tiny"}, "step-vitl": &stepTask{preset: "ViT-L/14-336"},
		"forward": &forwardTask{batch: 2}, "cache": &cacheTask{batch: 8},
		"predict-tiny": &predictTask{preset: "tiny"}, "predict-vitl": &predictTask{preset: "ViT-L/14-336"},
	}
	if path := os.Getenv("MADCLIP_PEER_CPUPROFILE"); path != "" { // where the time goes, for pprof
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "quit" {
			return
		}
		if len(f) < 2 || tasks[f[1]] == nil {
			fmt.Println("error unknown request", in.Text())
			continue
		}
		t, arg := tasks[f[1]], ""
		if len(f) > 2 {
			arg = f[2]
		}
		switch f[0] {
		case "setup":
			if err := torch.Do(func() error { return t.setup(arg) }); err != nil {
				fmt.Println("error", oneLine(err))
				continue
			}
			fmt.Println("ready")
		case "free":
			_ = torch.Do(func() error { t.free(); return nil }) // free cannot fail
			fmt.Println("freed")
		case "run":
			resetPeak()
			t0 := time.Now()
			err := torch.Do(t.run)
			el := time.Since(t0).Seconds()
			if err != nil {
				fmt.Println("error", oneLine(err))
				continue
			}
			fmt.Printf("done %.6f %d\n", el, peakKB())
		default:
			fmt.Println("error unknown request", in.Text())
		}
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// resetPeak resets the kernel's record of the peak resident set (VmHWM) to
// the current one.
// Where /proc does not allow it the peak stays the process's, which only
// overstates a later step's peak; the comparison then says so by itself.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakKB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// size is the benchmark's input side: the paper's.
const size = model.PaperImageSize

// backbone is a randomly initialised CLIP of the named preset at the
// benchmark's size, as madclip builds one for training.
func backbone(preset string) (*clip.Model, error) {
	cfg, ok := clip.Preset(preset)
	if !ok {
		return nil, fmt.Errorf("unknown preset %q", preset)
	}
	return clip.New(cfg, backboneOptions(), checkpoint.DefaultBackboneSeed)
}

func backboneOptions() clip.Options {
	return clip.Options{Activation: clip.GELU, ImageSize: size, Device: torch.CPU}
}

func madclip(backbone *clip.Model) (*model.MadCLIP, error) {
	tk, err := bpe.Default()
	if err != nil {
		return nil, err
	}
	return model.New(backbone, tk, model.Options{Object: "Brain", ImageSize: size}, 1) // seed 1, as train.Run with --seed 1
}

// stepTask is one training step (batch 16, with masks) from a cache of 32
// images' tapped features.
type stepTask struct {
	preset        string
	m             *model.MadCLIP
	opt           *torch.Adam
	taps          []*torch.Tensor // [32, 1+P, W] per layer
	labels, masks *torch.Tensor
	r             *rand.Rand
}

func (t *stepTask) setup(string) error {
	b, err := backbone(t.preset)
	if err != nil {
		return err
	}
	if t.m, err = madclip(b); err != nil {
		return err
	}
	params := t.m.Params().Tensors()
	for _, p := range params {
		if err := p.SetRequiresGrad(true); err != nil {
			return err
		}
	}
	if t.opt, err = torch.NewAdam(params, torch.AdamConfig{LR: train.PaperLR, Beta1: train.PaperBeta1, Beta2: train.PaperBeta2, Eps: torch.DefaultAdam().Eps}); err != nil {
		return err
	}
	g, err := torch.NewGenerator(2)
	if err != nil {
		return err
	}
	defer g.Free()
	tokens := int64(t.m.Grid()*t.m.Grid() + 1)
	w := int64(b.Config.VisionWidth)
	for range t.m.Opts.Layers {
		t.taps = append(t.taps, torch.Randn(g, torch.Float32, torch.CPU, 32, tokens, w).Persist())
	}
	lab := make([]float32, 32)
	for i := 16; i < 32; i++ {
		lab[i] = 1
	}
	t.labels = torch.FromSlice(lab).Persist()
	t.masks = torch.Rand(g, torch.Float32, torch.CPU, 32, size, size).GtScalar(0.9).ToDType(torch.Float32).Mul(t.labels.View(32, 1, 1)).Persist()
	t.r = rand.New(rand.NewPCG(3, 4))
	return nil
}

func (t *stepTask) free() {
	backbone := t.m.CLIP
	t.m.Free()
	backbone.Free()
	t.opt.Free()
	for _, tp := range t.taps {
		tp.Free()
	}
	t.labels.Free()
	t.masks.Free()
	t.taps = nil
}

func (t *stepTask) run() error {
	return torch.Scoped(func(s *torch.Scope) error {
		idx := make([]int64, 16)
		for i, j := range t.r.Perm(32)[:16] {
			idx[i] = int64(j)
		}
		ix := torch.FromSlice(idx)
		taps := make([]*torch.Tensor, len(t.taps))
		for i, tp := range t.taps {
			taps[i] = tp.IndexSelect(0, ix)
		}
		_, err := train.Step(t.m, t.opt, taps, t.labels.IndexSelect(0, ix), t.masks.IndexSelect(0, ix), train.LossOptions{Size: size}, torch.CPU)
		return err
	})
}

// forwardTask is the ViT-L/14 image tower's forward at 240 px, no graph.
type forwardTask struct {
	batch int64
	b     *clip.Model
	x     *torch.Tensor
}

func (t *forwardTask) setup(string) error {
	var err error
	if t.b, err = backbone("ViT-L/14-336"); err != nil {
		return err
	}
	t.x = torch.Rand(nil, torch.Float32, torch.CPU, t.batch, 3, size, size).Persist()
	return t.x.Err()
}

func (t *forwardTask) free() {
	t.b.Free()
	t.x.Free()
}

func (t *forwardTask) run() error {
	return torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			pooled, _ := t.b.Visual.Forward(t.x, nil)
			_, err := pooled.Float32s()
			return err
		})
	})
}

// cacheTask computes and keeps the tapped features of a batch of images, as
// training's feature cache does.
type cacheTask struct {
	batch int64
	m     *model.MadCLIP
	x     *torch.Tensor
}

func (t *cacheTask) setup(string) error {
	b, err := backbone("ViT-L/14-336")
	if err != nil {
		return err
	}
	if t.m, err = madclip(b); err != nil {
		return err
	}
	t.x = torch.Rand(nil, torch.Float32, torch.CPU, t.batch, 3, size, size).Persist()
	return t.x.Err()
}

func (t *cacheTask) free() {
	backbone := t.m.CLIP
	t.m.Free()
	backbone.Free()
	t.x.Free()
}

func (t *cacheTask) run() error {
	return torch.Scoped(func(s *torch.Scope) error {
		taps := t.m.Features(t.x)
		for _, tp := range taps {
			if err := tp.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// predictTask scores every image of a folder with a checkpoint, batch 16,
// decoding included.
type predictTask struct {
	preset string
	p      *infer.Predictor
	items  []dataset.Sample
}

func (t *predictTask) setup(dir string) error {
	b, err := backbone(t.preset)
	if err != nil {
		return err
	}
	m, err := madclip(b)
	if err != nil {
		return err
	}
	ck := filepath.Join(os.TempDir(), fmt.Sprintf("madclip-peer-%d.safetensors", os.Getpid()))
	defer os.Remove(ck)
	meta := checkpoint.Meta{Version: checkpoint.Version, Model: m.Opts, Backbone: checkpoint.Backbone{Preset: t.preset, Seed: checkpoint.DefaultBackboneSeed, Config: b.Config}, Dataset: "Brain", Masks: true}
	err = checkpoint.Save(ck, m, nil, meta)
	m.Free()
	b.Free()
	if err != nil {
		return err
	}
	tk, err := bpe.Default()
	if err != nil {
		return err
	}
	if t.p, err = infer.Open(ck, "", tk, torch.CPU); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		t.items = append(t.items, dataset.Sample{Path: filepath.Join(dir, e.Name())})
	}
	return nil
}

func (t *predictTask) free() {
	t.p.Close()
	t.items = nil
}

func (t *predictTask) run() error {
	var n int
	err := t.p.Stream(t.items, infer.StreamOptions{}, func(dataset.Decoded, infer.Result) error {
		n++
		return nil
	})
	if err == nil && n != len(t.items) {
		err = fmt.Errorf("scored %d of %d images", n, len(t.items))
	}
	return err
}
