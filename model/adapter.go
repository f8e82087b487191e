// Package model is MadCLIP (Shiri, Beyan, Murino, MICCAI 2025) on a frozen
// CLIP: dual-branch adapters on tapped ViT layers, a learnable prompt
// learner, and the normal/abnormal scores, as docs/design.md describes the
// authors' code.
package model

import (
	"math"

	"madclip/model/clip"
	"madclip/torch"
)

// Adapter maps one tapped layer's tokens into the joint space:
// h = LayerNorm(LeakyReLU(W1·x)) (no affine), then a detection head
// LeakyReLU(Wdet·h) and a segmentation head LeakyReLU(Wseg·h).
type Adapter struct {
	FC1 *torch.Tensor // [W, W]
	Det *torch.Tensor // [E, W]
	Seg *torch.Tensor // [E, W]; nil when one common head serves both
}

const leakySlope = 0.01

func newAdapter(b *clip.Builder, width, embed int, commonHead bool) *Adapter {
	bound := 1 / math.Sqrt(float64(width)) // nn.Linear's default initialisation
	w, e := int64(width), int64(embed)
	a := &Adapter{
		FC1: b.Sub("fc1").Get("weight", clip.InitUniform(bound), w, w),
		Det: b.Sub("det").Get("weight", clip.InitUniform(bound), e, w),
	}
	if !commonHead {
		a.Seg = b.Sub("seg").Get("weight", clip.InitUniform(bound), e, w)
	}
	return a
}

// Forward maps tapped tokens x [B, 1+P, W] (CLS first) to the detection and
// segmentation tokens [B, P, E], CLS dropped, each token L2-normalised.
func (a *Adapter) Forward(x *torch.Tensor) (det, seg *torch.Tensor) {
	w := a.FC1.Size(0)
	h := torch.Linear(x, a.FC1.ToDType(x.DType()), nil).LeakyRelu(leakySlope)
	h = torch.LayerNorm(h, []int64{w}, nil, nil, 1e-5)
	h = h.Narrow(1, 1, h.Size(1)-1)
	det = torch.Linear(h, a.Det.ToDType(h.DType()), nil).LeakyRelu(leakySlope).Normalize(-1, 0)
	if a.Seg == nil {
		return det, det
	}
	seg = torch.Linear(h, a.Seg.ToDType(h.DType()), nil).LeakyRelu(leakySlope).Normalize(-1, 0)
	return det, seg
}
