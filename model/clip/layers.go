package clip

import (
	"fmt"
	"math"

	"madclip/model/param"
	"madclip/torch"
)

func sqrt(x float64) float64 { return math.Sqrt(x) }

// Activation is the MLP nonlinearity of the residual blocks.
type Activation int

// QuickGELU (x·σ(1.702x)) is what OpenAI's CLIP was trained with; MadCLIP's
// reference code runs CLIP with exact GELU instead.
const (
	QuickGELU Activation = iota
	GELU
)

func (a Activation) String() string {
	if a == GELU {
		return "gelu"
	}
	return "quick_gelu"
}

func (a Activation) apply(x *torch.Tensor) *torch.Tensor {
	if a == GELU {
		return x.Gelu()
	}
	return x.QuickGelu()
}

// AttnMask says which positions a token may attend to.
type AttnMask int

// Attention masks.
const (
	FullAttention   AttnMask = iota // every token sees every token (the image tower)
	CausalAttention                 // a token sees itself and earlier ones (CLIP's text)
)

// LayerNorm is an affine layer normalisation over the last dimension.
type LayerNorm struct {
	Weight, Bias *torch.Tensor // [D]
}

func newLayerNorm(b *param.Builder, d int64) LayerNorm {
	return LayerNorm{Weight: b.Get("weight", param.Ones(), d), Bias: b.Get("bias", param.Zeros(), d)}
}

// Forward normalises x [..., D].
func (l LayerNorm) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.LayerNorm(x, []int64{l.Weight.Size(0)}, l.Weight, l.Bias, 1e-5)
}

// ResidualBlock is one transformer block: pre-norm multi-head self-attention
// with a packed q/k/v projection, then a pre-norm MLP (4× width).
type ResidualBlock struct {
	Ln1     LayerNorm
	InProj  param.Linear // D → 3D: q, k and v packed
	OutProj param.Linear // D → D
	Ln2     LayerNorm
	Fc      param.Linear // D → 4D
	Proj    param.Linear // 4D → D
	Heads   int
	Act     Activation
}

func newResidualBlock(b *param.Builder, width, heads, layers int, act Activation) *ResidualBlock {
	d := int64(width)
	projStd := 1 / sqrt(float64(width)) / sqrt(2*float64(layers))
	attn := b.Sub("attn")
	mlp := b.Sub("mlp")
	return &ResidualBlock{
		Ln1: newLayerNorm(b.Sub("ln_1"), d),
		// nn.MultiheadAttention names its packed projection in_proj_*.
		InProj: param.Linear{
			Weight: attn.Get("in_proj_weight", param.Normal(1/sqrt(float64(width))), 3*d, d),
			Bias:   attn.Get("in_proj_bias", param.Zeros(), 3*d),
		},
		OutProj: param.NewLinear(attn.Sub("out_proj"), d, d, param.Normal(projStd), param.WithBias),
		Ln2:     newLayerNorm(b.Sub("ln_2"), d),
		Fc:      param.NewLinear(mlp.Sub("c_fc"), d, 4*d, param.Normal(1/sqrt(2*float64(width))), param.WithBias),
		Proj:    param.NewLinear(mlp.Sub("c_proj"), 4*d, d, param.Normal(projStd), param.WithBias),
		Heads:   heads,
		Act:     act,
	}
}

// Forward runs the block on x [B, L, D] with the given attention mask.
func (r *ResidualBlock) Forward(x *torch.Tensor, mask AttnMask) *torch.Tensor {
	shape := x.Shape()
	if len(shape) != 3 {
		if err := x.Err(); err != nil {
			return x
		}
		return torch.Failed("residual block", "input has shape %v, want [batch, tokens, width]", shape)
	}
	B, L, D := shape[0], shape[1], shape[2]
	H := int64(r.Heads)
	h := r.Ln1.Forward(x)
	qkv := r.InProj.Forward(h).View(B, L, 3, H, D/H).Permute(2, 0, 3, 1, 4) // [3, B, H, L, d], strided views
	attn := torch.Attention(qkv.Select(0, 0), qkv.Select(0, 1), qkv.Select(0, 2), nil, mask == CausalAttention, 0)
	attn = attn.Transpose(1, 2).Reshape(B, L, D)
	x = x.Add(r.OutProj.Forward(attn))
	h = r.Act.apply(r.Fc.Forward(r.Ln2.Forward(x)))
	return x.Add(r.Proj.Forward(h))
}

// Transformer is a stack of residual blocks.
type Transformer struct {
	Blocks []*ResidualBlock
}

func newTransformer(b *param.Builder, width, layers, heads int, act Activation) *Transformer {
	t := &Transformer{}
	rb := b.Sub("resblocks")
	for i := range layers {
		t.Blocks = append(t.Blocks, newResidualBlock(rb.Sub(fmt.Sprint(i)), width, heads, layers, act))
	}
	return t
}

// Forward runs the blocks on x [B, L, D]. taps lists block numbers (1-based:
// tap 6 is the residual stream after the sixth block) whose outputs are
// returned too, in the order given.
//
// Each block runs in a scope of its own that keeps only its output, and a
// residual stream is freed once the next block has consumed it (unless it
// is tapped or is the input): memory grows with one block's work, not with
// the depth.
func (t *Transformer) Forward(x *torch.Tensor, mask AttnMask, taps []int) (*torch.Tensor, []*torch.Tensor) {
	out := make([]*torch.Tensor, len(taps))
	input := x
	tapped := false
	for i, blk := range t.Blocks {
		prev := x
		x = torch.Local1(func() *torch.Tensor { return blk.Forward(prev, mask) })
		if prev != input && !tapped {
			prev.Free()
		}
		tapped = false
		for j, tp := range taps {
			if tp == i+1 {
				out[j] = x
				tapped = true
			}
		}
	}
	return x, out
}
