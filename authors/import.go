package authors

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/internal/jsonpath"
	"madclip/model"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/model/param"
	"madclip/torch"
	"madclip/weights"
)

// ImportOptions say what the authors' file does not: how their model was
// run. The defaults are what their code does for the paper.
type ImportOptions struct {
	Dataset   string // e.g. "Brain" (their --obj)
	Object    string // the prompts' object word (default: the dataset's)
	Layers    []int  // tapped blocks, 1-based (their --features_list; default 6, 12, 18, 24 for ViT-L)
	ImageSize int    // their --img_size (default 240)
	// Masks says whether the model scores by its anomaly map (their code
	// does for Brain, Liver and Retina_RESC); nil: as the benchmark dataset.
	Masks *bool
	Shots int // shots per class it was trained on (default ReleasedShots)
	// Threshold is the label threshold to record (their file holds none):
	// the exporting checkpoint's, to read an export back whole; 0 for none.
	Threshold float64

	Weights      string // the CLIP weights their model ran on
	Preset       string // or a random preset (tests)
	BackboneSeed uint64
	Device       torch.Device
}

// Import reads the authors' checkpoint pth (never running pickle code),
// checks the text encoder copy inside it against the CLIP weights given,
// and writes the madclip checkpoint out. It runs on the compute thread.
func Import(pth, out string, o ImportOptions, tk *bpe.Tokenizer) (checkpoint.Meta, error) {
	opts, masks, err := o.resolve()
	if err != nil {
		return checkpoint.Meta{}, err
	}
	sum, err := weights.FileSHA256(pth)
	if err != nil {
		return checkpoint.Meta{}, err
	}
	var meta checkpoint.Meta
	err = torch.Scoped(func(s *torch.Scope) error {
		src, err := torch.LoadArchive(pth)
		if err != nil {
			return fmt.Errorf("%w (want the torch.save file of the authors' train.py)", err)
		}
		keys := map[string]bool{}
		for k, t := range src {
			keys[k] = true
			if !t.DType().IsFloat() { // every tensor their train.py saves is a float
				return fmt.Errorf("%s: %s holds %s values, want floating point", pth, k, t.DType())
			}
		}
		layers, err := adapterLayers(keys)
		if err != nil {
			return fmt.Errorf("%s: %w", pth, err)
		}
		if opts.Handcrafted, err = textMode(keys); err != nil {
			return fmt.Errorf("%s: %w", pth, err)
		}
		if err := unexpectedKeys(keys, layers); err != nil {
			return fmt.Errorf("%s: %w", pth, err)
		}
		from := checkpoint.Source{Preset: o.Preset, Seed: o.BackboneSeed, Weights: o.Weights}
		backbone, bb, err := checkpoint.OpenBackbone(from, opts.CLIPOptions(o.Device))
		if err != nil {
			return err
		}
		defer backbone.Free()
		defaulted, blocks := opts.Layers == nil, backbone.Config.VisionLayers
		if defaulted {
			opts.Layers = model.DefaultLayers(blocks)
		}
		switch {
		case len(opts.Layers) == layers:
		case blocks < layers:
			return fmt.Errorf("%s has adapters for %d tapped layers, more than the %d blocks of this backbone: it was trained on another CLIP", pth, layers, blocks)
		case defaulted:
			return fmt.Errorf("%s has adapters for %d tapped layers, the default for a %d-block backbone taps %d (%v); give %d with --layers", pth, layers, blocks, len(opts.Layers), opts.Layers, layers)
		default:
			given := fmt.Sprintf("%d layers are", len(opts.Layers))
			if len(opts.Layers) == 1 {
				given = "1 layer is"
			}
			return fmt.Errorf("%s has adapters for %d tapped layers, but %s given (%v); give them with --layers", pth, layers, given, opts.Layers)
		}
		if !opts.Handcrafted {
			if err := checkTextEncoder(pth, src, backbone, o.Weights); err != nil {
				return err
			}
		}
		params, err := ourParams(src, layers, opts.Handcrafted, int64(backbone.Config.TextWidth), o.Device)
		if err != nil {
			return fmt.Errorf("%s: %w", pth, err)
		}
		m, err := model.Build(backbone, tk, opts, param.NewLoadBuilder(params))
		if err != nil {
			return fmt.Errorf("%s: %w", pth, err)
		}
		defer m.Free()
		if opts.Handcrafted {
			if err := checkFixedText(pth, src[fixedText], m); err != nil {
				return err
			}
		}
		origin, err := filepath.Abs(pth) // recorded whole, as the other paths are
		if err != nil {
			origin = pth
		}
		meta = checkpoint.Meta{Version: checkpoint.Version, Model: m.Opts, Backbone: bb, Dataset: o.Dataset, Masks: masks, Shots: o.Shots,
			Threshold: o.Threshold, Imported: &checkpoint.Imported{Format: "MadCLIP authors' checkpoint", File: jsonpath.Path(origin), SHA256: sum}}
		if err := checkpoint.CheckParameters(pth, m.Params().Map()); err != nil {
			return err // their file is damaged: no checkpoint is made of it
		}
		return checkpoint.Save(out, m, nil, meta)
	})
	return meta, err
}

// ReleasedShots is the shots per class of the authors' released
// checkpoints.
const ReleasedShots = 16

// resolve fills the defaults and returns the model options and whether
// the model scores by its map.
func (o *ImportOptions) resolve() (model.Options, bool, error) {
	if o.Dataset == "" {
		return model.Options{}, false, fmt.Errorf("give the dataset the model was trained on (--dataset)")
	}
	if err := dataset.CheckName(o.Dataset); err != nil {
		return model.Options{}, false, err
	}
	if o.ImageSize == 0 {
		o.ImageSize = model.PaperImageSize
	}
	if o.Shots == 0 {
		o.Shots = ReleasedShots
	}
	opts := model.Options{Object: o.Object, Layers: o.Layers, ImageSize: o.ImageSize}
	if opts.Object == "" {
		opts.Object, _ = model.ObjectWord(o.Dataset)
	}
	if opts.Object == "" {
		return model.Options{}, false, fmt.Errorf("no object word for dataset %q: give the one its prompts used (--object)", o.Dataset)
	}
	if o.Masks != nil {
		return opts, *o.Masks, nil
	}
	for _, b := range dataset.Benchmarks() {
		if b.Name == o.Dataset {
			return opts, b.Masks, nil
		}
	}
	return model.Options{}, false, fmt.Errorf("%q is not a benchmark dataset: say whether the model was trained with masks (--masks or --masks=false)", o.Dataset)
}

// textMode tells learned prompts (their text_mood=learnable_all) from
// hand-crafted ones (text_mood=fix).
func textMode(keys map[string]bool) (handcrafted bool, err error) {
	if keys[fixedText] {
		for c := range 2 {
			for _, pos := range model.Positions() {
				if k := promptGroups[c] + "." + ctxName(c, pos); keys[k] {
					return false, fmt.Errorf("both %s (hand-crafted prompts) and %s (learned ones): which model is it?", fixedText, k)
				}
			}
		}
		return true, nil
	}
	have := [2]int{} // context tensors per class
	var missing []string
	for c := range 2 {
		for _, pos := range model.Positions() {
			if k := promptGroups[c] + "." + ctxName(c, pos); keys[k] {
				have[c]++
			} else {
				missing = append(missing, k)
			}
		}
	}
	switch {
	case len(missing) == 0:
		return false, nil
	case have[0] == 0 && have[1] == len(model.Positions()):
		return false, fmt.Errorf("only the abnormal prompts are learned (their text_mood=learnable_abnormal), which madclip does not implement")
	case have[0]+have[1] == 0:
		return false, fmt.Errorf("no %s (nor %s)", missing[0], fixedText)
	}
	return false, fmt.Errorf("no %s, though the other learned contexts are there: damaged or edited", strings.Join(missing, ", "))
}

// checkTextEncoder compares the text encoder copies inside the file with
// the backbone's weights: a model is only meaningful on the CLIP it was
// trained on.
func checkTextEncoder(pth string, src map[string]*torch.Tensor, backbone *clip.Model, weightsFile string) error {
	on := weightsFile
	if on == "" {
		on = "the preset backbone"
	}
	want := textEncoderNames(backbone)
	for _, g := range promptGroups {
		prefix := g + "." + textEncoder
		n := 0
		for k, t := range src {
			name, ok := strings.CutPrefix(k, prefix)
			if !ok {
				continue
			}
			n++
			ours, ok := backbone.Params().Get(name)
			if !ok || !want[name] {
				return fmt.Errorf("%s: its text encoder has %s, which %s does not", pth, name, on)
			}
			if fmt.Sprint(t.Shape()) != fmt.Sprint(ours.Shape()) {
				return fmt.Errorf("%s: its text encoder's %s has shape %v, %s has %v: trained on another CLIP", pth, name, t.Shape(), on, ours.Shape())
			}
			// |a − b| ≤ 1e-4 + 1e-3·|b| everywhere, computed in place of the
			// (large) values themselves.
			a, b := t.ToDType(torch.Float32).ToDevice(torch.CPU), ours.ToDType(torch.Float32).ToDevice(torch.CPU)
			excess, err := a.Sub(b).Abs().Sub(b.Abs().MulScalar(1e-3)).Max().Item()
			if err != nil {
				return fmt.Errorf("%s: comparing %s: %w", pth, name, err)
			}
			if math.IsNaN(excess) {
				return fmt.Errorf("%s: its text encoder's %s holds NaN: a damaged file", pth, name)
			}
			if excess > 1e-4 {
				return fmt.Errorf("%s: its text encoder's %s differs from %s's: the model was trained on other CLIP weights", pth, name, on)
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: no copy of the text encoder (%s...) to check the CLIP weights against", pth, prefix)
		}
		if n < len(want) {
			for _, name := range backbone.Params().Names() {
				if want[name] && src[prefix+name] == nil {
					return fmt.Errorf("%s: its text encoder lacks %s%s (%d of %d tensors missing): a damaged or partial file", pth, prefix, name, len(want)-n, len(want))
				}
			}
		}
	}
	return nil
}

// textEncoderNames are the names of the backbone's tensors that the
// authors' TextEncoder holds (see isTextEncoder).
func textEncoderNames(backbone *clip.Model) map[string]bool {
	names := map[string]bool{}
	for _, name := range backbone.Params().Names() {
		if isTextEncoder(name) {
			names[name] = true
		}
	}
	return names
}

// ourParams renames the file's trained tensors to madclip's, as float32 on
// dev; width is the text tower's, the contexts' last dimension.
func ourParams(src map[string]*torch.Tensor, layers int, handcrafted bool, width int64, dev torch.Device) (map[string]*torch.Tensor, error) {
	params := map[string]*torch.Tensor{}
	for b := range 2 {
		for li := range layers {
			for _, h := range headNames {
				params[adapterName(b, li, h.ours)] = src[theirAdapterName(b, li, h.theirs)].To(torch.Float32, dev)
			}
		}
	}
	if handcrafted {
		return params, nil
	}
	for c, phrases := range model.StatePhrases() {
		var perPos []*torch.Tensor
		for _, pos := range model.Positions() {
			k := promptGroups[c] + "." + ctxName(c, pos)
			ctx, ok := src[k]
			if !ok {
				return nil, fmt.Errorf("%s is missing", k)
			}
			shape := ctx.Shape()
			if len(shape) != 3 || shape[0] != int64(len(phrases)) || shape[1] != model.NumCtx || shape[2] != width {
				return nil, fmt.Errorf("%s has shape %v, want [%d, %d, %d] (the text tower's width)", k, shape, len(phrases), model.NumCtx, width)
			}
			perPos = append(perPos, ctx.To(torch.Float32, dev))
		}
		params[promptName(c)] = torch.Stack(1, perPos...) // [phrases, positions, 8, width]
	}
	return params, nil
}

// checkFixedText compares the stored hand-crafted text features [E, 2]
// with the ones computed here from the same templates and CLIP.
func checkFixedText(pth string, stored *torch.Tensor, m *model.MadCLIP) error {
	ours := m.TextFeatures().ToDType(torch.Float32).ToDevice(torch.CPU) // [2, E]
	theirs := stored.ToDType(torch.Float32).Transpose(0, 1)
	if fmt.Sprint(theirs.Shape()) != fmt.Sprint(ours.Shape()) {
		return fmt.Errorf("%s: %s has shape %v, want [%d, 2]", pth, fixedText, stored.Shape(), ours.Size(1))
	}
	cos, err := theirs.Normalize(-1, 0).Mul(ours).SumDims(torch.DropDims, 1).Min().Item()
	if err != nil {
		return fmt.Errorf("%s: %w", pth, err)
	}
	if math.IsNaN(cos) {
		return fmt.Errorf("%s: %s holds NaN or infinite values: a damaged file", pth, fixedText)
	}
	if cos < 0.999 {
		return fmt.Errorf("%s: its hand-crafted text features differ from the ones these CLIP weights give (cosine %.4f): trained on other weights or prompts", pth, cos)
	}
	return nil
}
