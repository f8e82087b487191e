package clip

import (
	"madclip/model/param"
	"madclip/torch"
)

// VisionTransformer is CLIP's image tower.
type VisionTransformer struct {
	Conv1          *torch.Tensor // [W, 3, P, P], no bias
	ClassEmbedding *torch.Tensor // [W]
	// PositionalEmbedding is the trained [G²+1, W] table; Positions is the
	// one used at the input resolution the model runs at (the same tensor
	// when the resolutions agree).
	PositionalEmbedding *torch.Tensor
	Positions           *torch.Tensor // [g²+1, W]
	LnPre, LnPost       LayerNorm
	Transformer         *Transformer
	Proj                *torch.Tensor // [W, E]

	Patch, Grid int // patch size and the grid side at the input resolution
}

func newVisionTransformer(b *param.Builder, c Config, act Activation) *VisionTransformer {
	w := int64(c.VisionWidth)
	g := int64(c.Grid())
	scale := 1 / sqrt(float64(c.VisionWidth))
	return &VisionTransformer{
		Conv1:               b.Get("conv1.weight", param.Normal(0.02), w, 3, int64(c.PatchSize), int64(c.PatchSize)),
		ClassEmbedding:      b.Get("class_embedding", param.Normal(scale), w),
		PositionalEmbedding: b.Get("positional_embedding", param.Normal(scale), g*g+1, w),
		LnPre:               newLayerNorm(b.Sub("ln_pre"), w),
		Transformer:         newTransformer(b.Sub("transformer"), c.VisionWidth, c.VisionLayers, c.VisionHeads, act),
		LnPost:              newLayerNorm(b.Sub("ln_post"), w),
		Proj:                b.Get("proj", param.Normal(scale), w, int64(c.EmbedDim)),
		Patch:               c.PatchSize,
		Grid:                c.Grid(),
	}
}

// ResizePositions resizes a [G²+1, W] positional table to a g×g grid:
// the grid part bicubically with antialiasing (align_corners false), the
// class position kept.
func ResizePositions(pos *torch.Tensor, g int) *torch.Tensor {
	shape := pos.Shape()
	if len(shape) != 2 {
		if err := pos.Err(); err != nil {
			return pos
		}
		return torch.Failed("resize positions", "table has shape %v, want [grid²+1, width]", shape)
	}
	n, w := shape[0]-1, shape[1]
	G := int64(sqrt(float64(n)) + 0.5)
	if G*G != n {
		return torch.Failed("resize positions", "%d positions are not a square grid", n)
	}
	if int64(g) == G {
		return pos.Detach()
	}
	cls := pos.Narrow(0, 0, 1)
	grid := pos.Narrow(0, 1, n).Reshape(1, G, G, w).Permute(0, 3, 1, 2)
	grid = torch.Interpolate(grid, int64(g), int64(g), torch.Resize{Mode: torch.Bicubic, Antialias: true})
	grid = grid.Permute(0, 2, 3, 1).Reshape(int64(g*g), w)
	return torch.Cat(0, cls, grid)
}

// setResolution prepares the positional table for images of size px.
func (v *VisionTransformer) setResolution(px int) error {
	v.Grid = px / v.Patch
	return torch.NoGrad(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			p := ResizePositions(v.PositionalEmbedding, v.Grid)
			if err := p.Err(); err != nil {
				return err
			}
			v.Positions = p.Persist()
			return nil
		})
	})
}

// Tokens embeds images x [B, 3, H, W] (H = W = the input resolution; rows and
// columns beyond the last whole patch are unused) into the token sequence
// [B, g²+1, W] that enters the first block (after ln_pre).
func (v *VisionTransformer) Tokens(x *torch.Tensor) *torch.Tensor {
	shape := x.Shape()
	if len(shape) != 4 || shape[1] != 3 {
		if err := x.Err(); err != nil {
			return x
		}
		return torch.Failed("clip vision", "images have shape %v, want [batch, 3, height, width]", shape)
	}
	if g := int(shape[2]) / v.Patch; g != v.Grid || int(shape[3])/v.Patch != v.Grid {
		return torch.Failed("clip vision", "images of %dx%d give a %dx%d grid, the model runs at %dx%d (%d px)",
			shape[2], shape[3], int(shape[2])/v.Patch, int(shape[3])/v.Patch, v.Grid, v.Grid, v.Grid*v.Patch)
	}
	B := shape[0]
	W := v.Conv1.Size(0)
	p := int64(v.Patch)
	h := torch.Conv2d(x, v.Conv1, nil, torch.Conv2dOptions{Stride: [2]int64{p, p}}) // [B, W, g, g]
	h = h.Flatten(2, 3).Transpose(1, 2)                                             // [B, g², W]
	cls := v.ClassEmbedding.CastAs(h).View(1, 1, W).Expand(B, 1, W)
	h = torch.Cat(1, cls, h).Add(v.Positions.CastAs(h))
	return v.LnPre.Forward(h)
}

// Forward returns the pooled image embedding [B, E] and the residual
// streams after the tapped blocks ([B, g²+1, W] each).
func (v *VisionTransformer) Forward(x *torch.Tensor, taps []int) (*torch.Tensor, []*torch.Tensor) {
	h, tapped := v.Transformer.Forward(v.Tokens(x), FullAttention, taps)
	pooled := v.LnPost.Forward(h.Select(1, 0)).Matmul(v.Proj.CastAs(h))
	return pooled, tapped
}

// MeanStd is the per-channel (R, G, B) mean and standard deviation that
// OpenAI's CLIP preprocessing normalises images in [0, 1] with.
func MeanStd() (mean, std [3]float32) {
	return [3]float32{0.48145466, 0.4578275, 0.40821073}, [3]float32{0.26862954, 0.26130258, 0.27577711}
}

// Normalize applies CLIP's preprocessing normalisation (MeanStd) to images
// [B, 3, H, W] with values in [0, 1].
func Normalize(images *torch.Tensor) *torch.Tensor {
	mean, std := MeanStd()
	dev := images.Device()
	m := torch.FromSlice(mean[:], 1, 3, 1, 1).ToDevice(dev)
	s := torch.FromSlice(std[:], 1, 3, 1, 1).ToDevice(dev)
	return images.Sub(m).Div(s)
}
