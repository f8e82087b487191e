package clip

import (
	"fmt"
	"math"

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

// LayerNorm is an affine layer normalisation over the last dimension.
type LayerNorm struct {
	Weight, Bias *torch.Tensor // [D]
}

func newLayerNorm(b *Builder, d int64) LayerNorm {
	return LayerNorm{Weight: b.Get("weight", InitOnes, d), Bias: b.Get("bias", InitZeros, d)}
}

// Forward normalises x [..., D].
func (l LayerNorm) Forward(x *torch.Tensor) *torch.Tensor {
	return torch.LayerNorm(x, []int64{l.Weight.Size(0)}, l.Weight, l.Bias, 1e-5)
}

// ResidualBlock is one transformer block: pre-norm multi-head self-attention
// with a packed q/k/v projection, then a pre-norm MLP (4× width).
type ResidualBlock struct {
	Ln1                LayerNorm
	InProjW, InProjB   *torch.Tensor // [3D, D], [3D]
	OutProjW, OutProjB *torch.Tensor // [D, D], [D]
	Ln2                LayerNorm
	FcW, FcB           *torch.Tensor // [4D, D], [4D]
	ProjW, ProjB       *torch.Tensor // [D, 4D], [D]
	Heads              int
	Act                Activation
}

func newResidualBlock(b *Builder, width, heads, layers int, act Activation) *ResidualBlock {
	d := int64(width)
	projStd := 1 / sqrt(float64(width)) / sqrt(2*float64(layers))
	attn := b.Sub("attn")
	mlp := b.Sub("mlp")
	return &ResidualBlock{
		Ln1:      newLayerNorm(b.Sub("ln_1"), d),
		InProjW:  attn.Get("in_proj_weight", InitNormal(1/sqrt(float64(width))), 3*d, d),
		InProjB:  attn.Get("in_proj_bias", InitZeros, 3*d),
		OutProjW: attn.Sub("out_proj").Get("weight", InitNormal(projStd), d, d),
		OutProjB: attn.Sub("out_proj").Get("bias", InitZeros, d),
		Ln2:      newLayerNorm(b.Sub("ln_2"), d),
		FcW:      mlp.Sub("c_fc").Get("weight", InitNormal(1/sqrt(2*float64(width))), 4*d, d),
		FcB:      mlp.Sub("c_fc").Get("bias", InitZeros, 4*d),
		ProjW:    mlp.Sub("c_proj").Get("weight", InitNormal(projStd), d, 4*d),
		ProjB:    mlp.Sub("c_proj").Get("bias", InitZeros, d),
		Heads:    heads,
		Act:      act,
	}
}

// Forward runs the block on x [B, L, D]; causal masks attention to earlier
// positions.
func (r *ResidualBlock) Forward(x *torch.Tensor, causal bool) *torch.Tensor {
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
	qkv := torch.Linear(h, r.InProjW, r.InProjB).View(B, L, 3, H, D/H).Permute(2, 0, 3, 1, 4) // [3, B, H, L, d], strided views
	attn := torch.Attention(qkv.Select(0, 0), qkv.Select(0, 1), qkv.Select(0, 2), nil, causal, 0)
	attn = attn.Transpose(1, 2).Reshape(B, L, D)
	x = x.Add(torch.Linear(attn, r.OutProjW, r.OutProjB))
	h = r.Act.apply(torch.Linear(r.Ln2.Forward(x), r.FcW, r.FcB))
	return x.Add(torch.Linear(h, r.ProjW, r.ProjB))
}

// Transformer is a stack of residual blocks.
type Transformer struct {
	Blocks []*ResidualBlock
}

func newTransformer(b *Builder, width, layers, heads int, act Activation) *Transformer {
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
func (t *Transformer) Forward(x *torch.Tensor, causal bool, taps []int) (*torch.Tensor, []*torch.Tensor) {
	out := make([]*torch.Tensor, len(taps))
	input := x
	tapped := false
	for i, blk := range t.Blocks {
		prev := x
		x = torch.Local1(func() *torch.Tensor { return blk.Forward(prev, causal) })
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
