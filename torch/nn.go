package torch

/*
#include "tb.h"
*/
import "C"

// Linear is x·wᵀ + b for x [..., in], w [out, in], b [out] or nil.
func Linear(x, w, b *Tensor) *Tensor {
	return applyOpt("linear", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_linear(hs[0], hs[1], hs[2], out)
	}, 2, x, w, b)
}

// Conv2dOptions are a 2-D convolution's geometry; zero values mean stride 1,
// no padding, dilation 1, one group.
type Conv2dOptions struct {
	Stride, Padding, Dilation [2]int64
	Groups                    int64
}

// Conv2d convolves x [N, Cin, H, W] with w [Cout, Cin/groups, kH, kW] and
// adds b [Cout] (nil for none).
func Conv2d(x, w, b *Tensor, o Conv2dOptions) *Tensor {
	for i := range 2 {
		if o.Stride[i] == 0 {
			o.Stride[i] = 1
		}
		if o.Dilation[i] == 0 {
			o.Dilation[i] = 1
		}
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	return applyOpt("conv2d", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_conv2d(hs[0], hs[1], hs[2],
			(*C.int64_t)(&o.Stride[0]), (*C.int64_t)(&o.Padding[0]), (*C.int64_t)(&o.Dilation[0]),
			C.int64_t(o.Groups), out)
	}, 2, x, w, b)
}

// LayerNorm normalises over the trailing dims given by shape, then scales by
// w and shifts by b when they are not nil.
func LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	p, n := int64s(shape)
	return applyOpt("layer_norm", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_layer_norm(hs[0], p, n, hs[1], hs[2], C.double(eps), out)
	}, 1, x, w, b)
}

func softmax(op string, t *Tensor, dim int64, log bool) *Tensor {
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_softmax(hs[0], C.int64_t(dim), cBool(log), out)
	}, t)
}

// Softmax normalises exp(x) along dim.
func (t *Tensor) Softmax(dim int64) *Tensor { return softmax("softmax", t, dim, false) }

// LogSoftmax is log(Softmax(dim)), computed stably.
func (t *Tensor) LogSoftmax(dim int64) *Tensor { return softmax("log_softmax", t, dim, true) }

// InterpMode selects an interpolation kernel.
type InterpMode int

// Interpolation kernels; the values equal the bridge's codes.
const (
	Nearest InterpMode = iota
	Bilinear
	Bicubic
)

// Resize says how Interpolate resamples; the zero value is nearest.
type Resize struct {
	Mode InterpMode
	// AlignCorners is torch's align_corners: the corner pixels' centres,
	// not their outer edges, map onto each other.
	AlignCorners bool
	// Antialias low-pass filters when shrinking, as PIL does.
	Antialias bool
}

// Interpolate resizes x [N, C, H, W] to [N, C, h, w], as
// torch.nn.functional.interpolate.
func Interpolate(x *Tensor, h, w int64, r Resize) *Tensor {
	return apply("interpolate", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_interpolate(hs[0], C.int(r.Mode), C.int64_t(h), C.int64_t(w), cBool(r.AlignCorners), cBool(r.Antialias), out)
	}, x)
}

// Padding selects grid_sample's treatment of points outside the input.
type Padding int

// grid_sample paddings; the values equal the bridge's codes.
const (
	PadZeros Padding = iota
	PadBorder
	PadReflection
)

// Sampling says how GridSample reads its input, and how AffineGrid lays
// out the grid: pass both the same value, as torch needs their
// align_corners to agree.
type Sampling struct {
	Mode    InterpMode
	Padding Padding
	// AlignCorners is torch's align_corners: -1 and 1 are the centres of
	// the corner pixels rather than their outer edges.
	AlignCorners bool
}

// GridSample samples x [N, C, H, W] at grid [N, h, w, 2] (x, y in [-1, 1]),
// as torch.nn.functional.grid_sample.
func GridSample(x, grid *Tensor, s Sampling) *Tensor {
	return apply("grid_sample", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_grid_sample(hs[0], hs[1], C.int(s.Mode), C.int(s.Padding), cBool(s.AlignCorners), out)
	}, x, grid)
}

// AffineGrid turns affine matrices theta [N, 2, 3] into a sampling grid
// [N, H, W, 2] for an output of size [N, C, H, W]; of s only AlignCorners
// matters.
func AffineGrid(theta *Tensor, size [4]int64, s Sampling) *Tensor {
	return apply("affine_grid", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_affine_grid(hs[0], (*C.int64_t)(&size[0]), 4, cBool(s.AlignCorners), out)
	}, theta)
}

// Attention is softmax(q·kᵀ·scale + mask)·v over the last two dims
// (q [..., L, d], k [..., S, d], v [..., S, dv] → [..., L, dv]). mask may be
// nil, boolean (true attends) or additive; causal adds the lower-triangular
// mask; scale <= 0 means 1/√d. libtorch 2.x runs the fused kernel, 1.13 the
// same math step by step.
func Attention(q, k, v, mask *Tensor, causal bool, scale float64) *Tensor {
	return applyOpt("attention", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_attention(hs[0], hs[1], hs[2], hs[3], cBool(causal), C.double(scale), out)
	}, 3, q, k, v, mask)
}

// Embedding looks up rows of weight [V, D] for int64 ids of any shape.
func Embedding(weight, ids *Tensor) *Tensor {
	return apply("embedding", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_embedding(hs[0], hs[1], out)
	}, weight, ids)
}
