package model

import (
	"fmt"

	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/model/param"
	"madclip/torch"
)

// Options configure MadCLIP. The zero value is the authors' reference
// behaviour; each field switches one thing away from it.
type Options struct {
	// Object is the object word of the prompts (see ObjectWords).
	Object string `json:"object"`
	// Layers are the tapped ViT blocks, 1-based; nil means four evenly
	// spaced blocks ending at the last (6, 12, 18, 24 for ViT-L).
	Layers []int `json:"layers"`
	// ImageSize is the input resolution (PaperImageSize in the paper).
	ImageSize int `json:"image_size"`

	// The reference code's departures from standard CLIP, on by default:
	QuickGELU     bool `json:"quick_gelu"`     // use CLIP's QuickGELU instead of exact GELU
	CausalPrompts bool `json:"causal_prompts"` // keep the causal mask when encoding the learned prompts
	MeanStd       bool `json:"mean_std"`       // normalise images with CLIP's mean and std

	// The paper's ablations:
	GenericObject  bool `json:"generic_object"`  // "medical image" instead of the object word
	SharedAdapters bool `json:"shared_adapters"` // one set of adapters for both branches
	NoSubtraction  bool `json:"no_subtraction"`  // scores without subtracting the opposite class
	CommonHead     bool `json:"common_head"`     // one head for detection and segmentation
	Handcrafted    bool `json:"handcrafted"`     // the 35-template prompt ensemble instead of learnable prompts
}

// Departures names, in words for reports, what these options make the
// model do unlike the paper's: the reference code's departures from CLIP
// kept, and the ablations (the softmax loss, a training setting, aside).
func (o Options) Departures() []string {
	var out []string
	for _, d := range []struct {
		on   bool
		what string
	}{
		{o.QuickGELU, "QuickGELU (paper: exact GELU)"}, {o.CausalPrompts, "causal prompts"}, {o.MeanStd, "CLIP's mean and std"},
		{o.GenericObject, "ablation: generic object word"}, {o.SharedAdapters, "ablation: shared adapters"},
		{o.NoSubtraction, "ablation: no subtraction"}, {o.CommonHead, "ablation: common head"},
		{o.Handcrafted, "ablation: hand-crafted prompts"},
	} {
		if d.on {
			out = append(out, d.what)
		}
	}
	return out
}

// WithPrecision runs fn at MadCLIP's precision on dev: bf16 autocast on
// CUDA (the authors ran fp16 autocast), fp32 on the CPU.
func WithPrecision(dev torch.Device, fn func() error) error {
	if dev.IsCUDA() {
		return torch.Autocast(torch.DeviceCUDA, torch.BFloat16, fn)
	}
	return fn()
}

// PaperImageSize is the paper's input resolution, madclip's default.
const PaperImageSize = 240

// MaxImageSize is the largest input resolution madclip trains or runs at:
// a 73×73 grid of ViT-L/14's patches, whose attention already takes
// gigabytes per image.
const MaxImageSize = 1024

// DefaultLayers taps four evenly spaced blocks ending at the last (6, 12,
// 18, 24 of ViT-L/14); a backbone of fewer than four blocks has each tapped
// once.
func DefaultLayers(blocks int) []int {
	var out []int
	for i := range 4 {
		if l := max(1, blocks*(i+1)/4); len(out) == 0 || l != out[len(out)-1] {
			out = append(out, l)
		}
	}
	return out
}

// MadCLIP is the model: a frozen CLIP, dual-branch adapters on its tapped
// layers, and the prompt learner.
type MadCLIP struct {
	Opts     Options
	CLIP     *clip.Model
	Adapters [2][]*Adapter // [branch][layer]; branch 1 is branch 0 when shared
	Prompts  *PromptLearner

	params *torch.Store
	grid   int // the patch grid's side, kept when the image tower is released
}

// Branch is one of the model's two branches: the normal class's adapters
// and prompts, or the abnormal class's; it indexes their pairs.
type Branch int

const (
	Normal   Branch = 0
	Abnormal Branch = 1
)

// CheckLayers refuses tapped layers outside a backbone of the given number
// of blocks, and a block tapped twice (its adapters would see the same
// features).
func (o Options) CheckLayers(blocks int) error {
	seen := map[int]bool{}
	for _, l := range o.Layers {
		if l < 1 || l > blocks {
			return fmt.Errorf("tapped layer %d outside the backbone's 1..%d", l, blocks)
		}
		if seen[l] {
			return fmt.Errorf("layer %d is tapped twice", l)
		}
		seen[l] = true
	}
	return nil
}

// CLIPOptions are the backbone options MadCLIP's options imply.
func (o Options) CLIPOptions(dev torch.Device) clip.Options {
	act := clip.GELU
	if o.QuickGELU {
		act = clip.QuickGELU
	}
	return clip.Options{Activation: act, ImageSize: o.ImageSize, Device: dev}
}

// Build creates MadCLIP's trainable parts over backbone with b (fresh
// parameters or ones loaded from a checkpoint) and returns the model.
// The backbone must have been built with o.CLIPOptions.
func Build(backbone *clip.Model, tk *bpe.Tokenizer, o Options, b *param.Builder) (*MadCLIP, error) {
	if o.Object == "" {
		return nil, fmt.Errorf("model: no object word")
	}
	if len(o.Layers) == 0 {
		o.Layers = DefaultLayers(backbone.Config.VisionLayers)
	}
	if err := o.CheckLayers(backbone.Config.VisionLayers); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if o.ImageSize == 0 {
		o.ImageSize = backbone.Options.ImageSize
	}
	if o.ImageSize != backbone.Options.ImageSize {
		return nil, fmt.Errorf("model: image size %d, the backbone runs at %d", o.ImageSize, backbone.Options.ImageSize)
	}
	m := &MadCLIP{Opts: o, CLIP: backbone, grid: backbone.Visual.Grid}
	w, e := backbone.Config.VisionWidth, backbone.Config.EmbedDim
	branches := []string{"normal", "abnormal"}
	if o.SharedAdapters {
		branches = []string{"shared"}
	}
	for bi, name := range branches {
		for li := range o.Layers {
			m.Adapters[bi] = append(m.Adapters[bi], newAdapter(b.Sub("adapters").Sub(name).Sub(fmt.Sprint(li)), w, e, o.CommonHead))
		}
	}
	if o.SharedAdapters {
		m.Adapters[Abnormal] = m.Adapters[Normal]
	}
	object := o.Object
	if o.GenericObject {
		object = GenericObjectWord
	}
	var err error
	m.Prompts, err = newPromptLearner(b, tk, object, backbone.Config.TextWidth, backbone.Config.ContextLength, o.Handcrafted)
	if err != nil {
		return nil, err
	}
	store, err := b.Finish()
	if err != nil {
		return nil, err
	}
	m.params = store
	if err := m.Prompts.prepare(backbone.Text, backbone.Options.Device); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

// New creates MadCLIP with freshly initialised trainable parameters drawn
// from seed.
func New(backbone *clip.Model, tk *bpe.Tokenizer, o Options, seed uint64) (*MadCLIP, error) {
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	return Build(backbone, tk, o, param.NewInitBuilder(g, torch.Float32, backbone.Options.Device))
}

// Params are the trainable tensors by checkpoint name.
func (m *MadCLIP) Params() *torch.Store { return m.params }

// Free releases the trainable parameters and the prompts' frozen
// embeddings (not the backbone).
func (m *MadCLIP) Free() {
	if m.Prompts != nil {
		m.Prompts.Free()
	}
	if m.params != nil {
		m.params.Free()
	}
}

// Grid is the side of the patch grid.
func (m *MadCLIP) Grid() int { return m.grid }

// Features runs the frozen backbone on images [B, 3, px, px] (RGB in [0, 1])
// and returns the residual stream after each tapped layer [B, 1+P, W],
// without a graph: they depend on no trainable parameter and can be cached.
func (m *MadCLIP) Features(images *torch.Tensor) []*torch.Tensor {
	if m.CLIP.Visual == nil {
		return []*torch.Tensor{torch.Failed("madclip features", "the image tower was released")}
	}
	var taps []*torch.Tensor
	err := torch.NoGrad(func() error {
		x := images
		if m.Opts.MeanStd {
			x = clip.Normalize(x)
		}
		_, taps = m.CLIP.Visual.Forward(x, m.Opts.Layers)
		return nil
	})
	if err != nil {
		return []*torch.Tensor{torch.Failed("madclip features", "%v", err)}
	}
	return taps
}

// TextFeatures encodes the prompts and returns the class embeddings [2, E]
// (row 0 t_n, row 1 t_ab): each class's prompt embeddings averaged, then
// L2-normalised. Gradients flow to the context vectors.
func (m *MadCLIP) TextFeatures() *torch.Tensor {
	if m.Prompts.Handcrafted {
		return m.Prompts.text.Detach() // encoded once when the model was built
	}
	if m.CLIP.Text == nil {
		return torch.Failed("madclip text features", "the text tower was released")
	}
	emb, eot := m.Prompts.Assemble()
	mask := clip.FullAttention // the authors drop CLIP's causal mask here
	if m.Opts.CausalPrompts {
		mask = clip.CausalAttention
	}
	f := m.CLIP.Text.ForwardEmbeddings(emb, eot, mask) // [2n, E]
	n := int64(m.Prompts.PromptCount())
	return f.View(2, n, -1).MeanDims(torch.DropDims, 1).Normalize(-1, 0)
}

// Scores turns tapped features into the per-patch logits of each layer,
// [B, P, 2] = (S_n, S_ab), for the detection and the segmentation heads:
// S_n = O_n·t_n − O_n·t_ab and S_ab = O_ab·t_ab − O_ab·t_n, where O_n and
// O_ab are the normal and abnormal branches' tokens (without the
// subtraction in the ablation).
//
// Each layer runs in a scope of its own that keeps only its two score
// tensors.
func (m *MadCLIP) Scores(taps []*torch.Tensor, text *torch.Tensor) (det, seg []*torch.Tensor) {
	for li, x := range taps {
		ds := torch.Local(func() []*torch.Tensor {
			dn, sn := m.Adapters[Normal][li].Forward(x)
			da, sa := m.Adapters[Abnormal][li].Forward(x)
			return []*torch.Tensor{m.pairScores(dn, da, text), m.pairScores(sn, sa, text)}
		})
		det = append(det, ds[0])
		seg = append(seg, ds[1])
	}
	return det, seg
}

// pairScores is one head's [B, P, 2] = (S_n, S_ab) from the two branches'
// tokens on, oab [B, P, E] and the text features [2, E], as the paper
// writes them (products with t_n and t_ab, then their difference); tokens
// in a lower precision (bf16 autocast on CUDA) go to roundedPairScores.
func (m *MadCLIP) pairScores(on, oab, text *torch.Tensor) *torch.Tensor {
	if on.DType() != torch.Float32 {
		return m.roundedPairScores(on, oab, text)
	}
	t := text.CastAs(on).Transpose(0, 1) // [E, 2]
	sn := on.Matmul(t)                   // [B, P, 2]: O_n·t_n, O_n·t_ab
	sab := oab.Matmul(t)                 // O_ab·t_n, O_ab·t_ab
	if m.Opts.NoSubtraction {
		return torch.Stack(-1, sn.Select(-1, 0), sab.Select(-1, 1))
	}
	return torch.Stack(-1, sn.Select(-1, 0).Sub(sn.Select(-1, 1)), sab.Select(-1, 1).Sub(sab.Select(-1, 0)))
}

// roundedPairScores is pairScores for tokens whose products autocast
// rounds to bf16: the difference of two nearly equal bf16 products would
// lose most of S (a step of 0.002 near 0.25 against differences of 0.01),
// so the subtraction is taken on the text side in float32, S_n =
// O_n·(t_n − t_ab) and S_ab = −O_ab·(t_n − t_ab), which is equal in exact
// arithmetic. The scores come out in float32, and so does everything after
// them (sigmoid, means over patches, the sum over layers, the losses).
func (m *MadCLIP) roundedPairScores(on, oab, text *torch.Tensor) *torch.Tensor {
	t := text.ToDType(torch.Float32)
	if m.Opts.NoSubtraction {
		sn := on.Matmul(t.Select(0, 0).CastAs(on))    // O_n·t_n [B, P]
		sab := oab.Matmul(t.Select(0, 1).CastAs(oab)) // O_ab·t_ab
		return torch.Stack(-1, sn.ToDType(torch.Float32), sab.ToDType(torch.Float32))
	}
	d := t.Select(0, 0).Sub(t.Select(0, 1)) // t_n − t_ab [E]
	sn := on.Matmul(d.CastAs(on)).ToDType(torch.Float32)
	sab := oab.Matmul(d.CastAs(oab)).ToDType(torch.Float32).Neg()
	return torch.Stack(-1, sn, sab)
}

// SegLogits reshapes one layer's patch logits [B, P, 2] to maps [B, 2, g, g]
// and upsamples them bilinearly (align_corners true) to size×size.
func SegLogits(s *torch.Tensor, grid, size int) *torch.Tensor {
	B := s.Size(0)
	g := int64(grid)
	maps := s.Transpose(1, 2).Reshape(B, 2, g, g)
	return torch.Interpolate(maps, int64(size), int64(size), torch.Resize{Mode: torch.Bilinear, AlignCorners: true})
}

// AnomalyMap is the pixel-level map [B, size, size]: per layer the
// upsampled segmentation logits' softmax abnormal probability, summed over
// the layers.
func (m *MadCLIP) AnomalyMap(seg []*torch.Tensor, size int) *torch.Tensor {
	var sum *torch.Tensor
	for _, s := range seg {
		p := torch.Local1(func() *torch.Tensor { return SegLogits(s, m.Grid(), size).Softmax(1).Select(1, 1) })
		if sum == nil {
			sum = p
		} else {
			sum = sum.Add(p)
		}
	}
	return sum
}

// DetMap is the detection head's pixel-level map [B, size, size]: per
// layer sigmoid(S_ab − S_n) of each patch on its grid, upsampled
// bilinearly (align_corners true) to size×size, summed over the layers. Its
// patches' mean is DetScore: it shows where a model trained without masks
// (whose segmentation head never trained) sees the abnormality it scores.
func (m *MadCLIP) DetMap(det []*torch.Tensor, size int) *torch.Tensor {
	var sum *torch.Tensor
	for _, d := range det {
		p := torch.Local1(func() *torch.Tensor {
			B, g := d.Size(0), int64(m.Grid())
			probs := d.Select(-1, 1).Sub(d.Select(-1, 0)).Sigmoid().Reshape(B, 1, g, g)
			return torch.Interpolate(probs, int64(size), int64(size), torch.Resize{Mode: torch.Bilinear, AlignCorners: true}).Select(1, 0)
		})
		if sum == nil {
			sum = p
		} else {
			sum = sum.Add(p)
		}
	}
	return sum
}

// DetScore is the image score of image-level datasets [B]: per layer the
// mean over patches of sigmoid(S_ab − S_n) on the detection head, summed
// over the layers.
func DetScore(det []*torch.Tensor) *torch.Tensor {
	var sum *torch.Tensor
	for _, d := range det {
		p := d.Select(-1, 1).Sub(d.Select(-1, 0)).Sigmoid().MeanDims(torch.DropDims, 1)
		if sum == nil {
			sum = p
		} else {
			sum = sum.Add(p)
		}
	}
	return sum
}

// ImageScores are a batch's scores as prediction reports them, each the sum
// over the tapped layers divided by their number so that it lies in [0, 1]:
// the anomaly map [B, size, size], the detection head's score [B], and the
// image score [B]. When byMap (models trained with masks) the map is the
// segmentation head's and the image score its maximum; otherwise the map is
// the detection head's (DetMap) and the image score the detection score.
// Every image score (predict, eval, selection on valid images) is computed
// here or by ImageScore.
func (m *MadCLIP) ImageScores(det, seg []*torch.Tensor, size int, byMap bool) (score, detScore, amap *torch.Tensor) {
	detScore = scaledDetScore(det)
	if byMap {
		amap = m.scaledMap(seg, size)
		return amap.Flatten(1, 2).AmaxDims(torch.DropDims, 1), detScore, amap
	}
	amap = m.DetMap(det, size).ToDType(torch.Float32).DivScalar(float64(len(det)))
	return detScore, detScore, amap
}

// ImageScore is ImageScores' image score alone (no map unless it is scored
// by its map).
func (m *MadCLIP) ImageScore(det, seg []*torch.Tensor, size int, byMap bool) *torch.Tensor {
	if byMap {
		return m.scaledMap(seg, size).Flatten(1, 2).AmaxDims(torch.DropDims, 1)
	}
	return scaledDetScore(det)
}

func scaledDetScore(det []*torch.Tensor) *torch.Tensor {
	return DetScore(det).ToDType(torch.Float32).DivScalar(float64(len(det)))
}

func (m *MadCLIP) scaledMap(seg []*torch.Tensor, size int) *torch.Tensor {
	return m.AnomalyMap(seg, size).ToDType(torch.Float32).DivScalar(float64(len(seg)))
}
