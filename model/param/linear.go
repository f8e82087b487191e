package param

import "madclip/torch"

// Linear is y = x·Wᵀ + b. The weight is cast to the input's dtype, so a
// float32 layer runs inside a half-precision model (MadCLIP's adapters on a
// float16 CLIP) and a half-precision one under autocast.
type Linear struct {
	Weight *torch.Tensor // [out, in]
	Bias   *torch.Tensor // [out], or nil
}

// Bias says whether a Linear layer has a bias.
type Bias bool

// Bias choices for NewLinear.
const (
	WithBias Bias = true
	NoBias   Bias = false
)

// NewLinear asks b for the weight (and the bias, with WithBias) of a layer
// from in to out features, initialised as w and zeros.
func NewLinear(b *Builder, in, out int64, w Init, bias Bias) Linear {
	l := Linear{Weight: b.Get("weight", w, out, in)}
	if bias {
		l.Bias = b.Get("bias", Zeros(), out)
	}
	return l
}

// Out is the number of output features.
func (l Linear) Out() int64 { return l.Weight.Size(0) }

// Forward maps x [..., in] to [..., out].
func (l Linear) Forward(x *torch.Tensor) *torch.Tensor {
	var b *torch.Tensor
	if l.Bias != nil {
		b = l.Bias.CastAs(x)
	}
	return torch.Linear(x, l.Weight.CastAs(x), b)
}
