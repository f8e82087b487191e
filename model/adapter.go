// Package model is MadCLIP (Shiri, Beyan, Murino, MICCAI 2025) on a frozen
// CLIP: dual-branch adapters on tapped ViT layers, a learnable prompt
// learner, and the normal/abnormal scores, as docs/design.md describes the
// authors' code.
package model

import (
	"math"

	"madclip/model/param"
	"madclip/torch"
)

// Adapter maps one tapped layer's tokens into the joint space:
// h = LayerNorm(LeakyReLU(W1·x)) (no affine), then a detection head
// LeakyReLU(Wdet·h) and a segmentation head LeakyReLU(Wseg·h).
type Adapter struct {
	FC1 param.Linear  // W → W, no bias
	Det param.Linear  // W → E, no bias
	Seg *param.Linear // W → E, no bias; nil when one common head serves both
}

const leakySlope = 0.01

func newAdapter(b *param.Builder, width, embed int, commonHead bool) *Adapter {
	init := param.Uniform(1 / math.Sqrt(float64(width))) // nn.Linear's default
	w, e := int64(width), int64(embed)
	a := &Adapter{
		FC1: param.NewLinear(b.Sub("fc1"), w, w, init, param.NoBias),
		Det: param.NewLinear(b.Sub("det"), w, e, init, param.NoBias),
	}
	if !commonHead {
		seg := param.NewLinear(b.Sub("seg"), w, e, init, param.NoBias)
		a.Seg = &seg
	}
	return a
}

// Forward maps tapped tokens x [B, 1+P, W] (CLS first) to the detection and
// segmentation tokens [B, P, E], CLS dropped, each token L2-normalised.
func (a *Adapter) Forward(x *torch.Tensor) (det, seg *torch.Tensor) {
	h := a.FC1.Forward(x).LeakyRelu(leakySlope)
	h = torch.LayerNorm(h, []int64{a.FC1.Out()}, nil, nil, 1e-5)
	h = h.Narrow(1, 1, h.Size(1)-1)
	det = a.Det.Forward(h).LeakyRelu(leakySlope).Normalize(-1, 0)
	if a.Seg == nil {
		return det, det
	}
	seg = a.Seg.Forward(h).LeakyRelu(leakySlope).Normalize(-1, 0)
	return det, seg
}
