package clip

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"madclip/authorship"
	"madclip/model/param"
	"madclip/torch"
)

// Options choose how a CLIP model runs.
type Options struct {
	// Activation of the residual MLPs: QuickGELU (CLIP's own) or GELU.
	Activation Activation
	// ImageSize is the input resolution; 0 means the trained one. Another
	// size resizes the positional grid (see ResizePositions).
	ImageSize int
	// DType is the dtype parameters are held in (Float32 by default).
	DType torch.DType
	// Device holds the parameters.
	Device torch.Device
}

// Model is CLIP: both towers and the logit scale.
type Model struct {
	Config     Config
	Options    Options
	Visual     *VisionTransformer
	Text       *TextTransformer
	LogitScale *torch.Tensor // scalar, log of the softmax temperature's inverse

	params *torch.Store
}

func build(b *param.Builder, c Config, o Options) *Model {
	return &Model{
		Config:     c,
		Options:    o,
		Visual:     newVisionTransformer(b.Sub("visual"), c, o.Activation),
		Text:       newTextTransformer(b, c, o.Activation),
		LogitScale: b.Get("logit_scale", param.Const(math.Log(1/0.07))), // OpenAI's starting temperature,
	}
}

func (m *Model) finish(b *param.Builder) (*Model, error) {
	store, err := b.Finish()
	if err != nil {
		return nil, err
	}
	m.params = store
	px := m.Options.ImageSize
	if px == 0 {
		px = m.Config.ImageSize
		m.Options.ImageSize = px
	}
	if px < m.Config.PatchSize {
		m.Free()
		return nil, fmt.Errorf("input size %d is smaller than one %d-px patch", px, m.Config.PatchSize)
	}
	if err := m.Visual.setResolution(px); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

// Load reads CLIP weights (safetensors with OpenAI's tensor names, any float
// dtype on disk), infers the architecture from their shapes, and builds the
// model. Every tensor must be used and have its expected shape.
func Load(path string, o Options) (*Model, error) {
	if o.DType == 0 {
		o.DType = torch.Float32
	}
	src, meta, err := torch.LoadSafetensors(path, o.Device, o.DType)
	if err != nil {
		return nil, err
	}
	shapes := make(map[string][]int64, len(src))
	for k, t := range src {
		shapes[k] = t.Shape()
	}
	c, err := ConfigFromShapes(shapes)
	if err == nil {
		err = FloatingPoint(src)
	}
	if err != nil {
		for _, t := range src {
			t.Free()
		}
		if authorship.MetadataKind(meta) == authorship.Checkpoint {
			return nil, authorship.CheckpointAsWeights("load", path)
		}
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	b := param.NewLoadBuilder(src)
	m, err := build(b, c, o).finish(b)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// New creates a randomly initialised model of configuration c, drawing from
// a generator seeded with seed: the same seed gives the same weights.
func New(c Config, o Options, seed uint64) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.DType == 0 {
		o.DType = torch.Float32
	}
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	b := param.NewInitBuilder(g, o.DType, o.Device)
	return build(b, c, o).finish(b)
}

// Params lists the weights by name (for saving and for checks).
func (m *Model) Params() *torch.Store { return m.params }

// Free releases the model's tensors.
func (m *Model) Free() {
	if m == nil {
		return
	}
	if m.Visual != nil && m.Visual.Positions != nil {
		m.Visual.Positions.Free()
	}
	if m.params != nil {
		m.params.Free()
	}
}

// ReleaseVision frees the image tower's weights (Visual is nil afterwards):
// a training run whose image features are all cached needs only the text
// tower, and the image tower is most of ViT-L/14's memory.
func (m *Model) ReleaseVision() {
	if m.Visual == nil {
		return
	}
	m.release(func(name string) bool { return strings.HasPrefix(name, "visual.") })
	m.Visual.Positions.Free()
	m.Visual = nil
}

// ReleaseText frees the text tower's weights (Text is nil afterwards):
// prediction with class embeddings stored in its checkpoint needs only the
// image tower, and the text tower is a quarter of ViT-L/14's weights.
func (m *Model) ReleaseText() {
	if m.Text == nil {
		return
	}
	m.release(func(name string) bool { return !strings.HasPrefix(name, "visual.") && name != "logit_scale" })
	m.Text = nil
}

// release frees the parameters whose names are chosen.
func (m *Model) release(chosen func(name string) bool) {
	for _, name := range m.params.Names() {
		if chosen(name) {
			m.params.Remove(name)
		}
	}
}

// EncodeImage returns image embeddings [B, E] for images x [B, 3, px, px],
// without building an autograd graph.
func (m *Model) EncodeImage(x *torch.Tensor) *torch.Tensor {
	if m.Visual == nil {
		return torch.Failed("clip image", "the image tower was released")
	}
	var out *torch.Tensor
	if err := torch.NoGrad(func() error {
		out, _ = m.Visual.Forward(x, nil)
		return nil
	}); err != nil {
		return torch.Failed("clip image", "%v", err)
	}
	return out
}

// EncodeText returns text embeddings [B, E] for token ids [B, L], without
// building an autograd graph.
func (m *Model) EncodeText(ids *torch.Tensor) *torch.Tensor {
	if m.Text == nil {
		return torch.Failed("clip text", "the text tower was released")
	}
	var out *torch.Tensor
	if err := torch.NoGrad(func() error {
		out = m.Text.Forward(ids)
		return nil
	}); err != nil {
		return torch.Failed("clip text", "%v", err)
	}
	return out
}

// Logits returns CLIP's scaled cosine similarities, logits_per_image [Bi, Bt],
// for image and text embeddings.
func (m *Model) Logits(img, txt *torch.Tensor) *torch.Tensor {
	in := img.Normalize(-1, 0)
	tn := txt.Normalize(-1, 0)
	return in.Matmul(tn.Transpose(0, 1)).Mul(m.LogitScale.Exp().CastAs(in))
}

// ExpectedShapes lists every parameter of configuration c by its checkpoint
// name, with its shape.
func ExpectedShapes(c Config) map[string][]int64 {
	b := param.NewShapeRecorder()
	build(b, c, Options{})
	return b.Shapes()
}

// FloatingPoint refuses weights with a tensor that is not floating point
// (an integer token embedding or convolution would fail deep inside the
// first forward pass), naming the first such tensor.
func FloatingPoint(w map[string]*torch.Tensor) error {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		in, err := w[n].Info()
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if !in.DType.IsFloat() {
			return fmt.Errorf("not CLIP weights: %s is stored as %v, not floating point", n, in.DType)
		}
	}
	return nil
}
