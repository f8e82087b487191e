package torch

/*
#include "tb.h"
*/
import "C"

// optHandle returns the handle of an optional operand (nil stays nil).
func optHandle(op string, t *Tensor) (*C.tb_tensor, *Tensor) {
	if t == nil {
		return nil, nil
	}
	hs, bad := operands(op, t)
	if bad != nil {
		return nil, bad
	}
	return hs[0], nil
}

// Linear is x·wᵀ + b for x [..., in], w [out, in], b [out] or nil.
func Linear(x, w, b *Tensor) *Tensor {
	hs, bad := operands("linear", x, w)
	if bad != nil {
		return bad
	}
	hb, bad := optHandle("linear", b)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("linear", C.tb_linear(hs[0], hs[1], hb, &out), out)
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
	hs, bad := operands("conv2d", x, w)
	if bad != nil {
		return bad
	}
	hb, bad := optHandle("conv2d", b)
	if bad != nil {
		return bad
	}
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
	var out *C.tb_tensor
	return result("conv2d", C.tb_conv2d(hs[0], hs[1], hb,
		(*C.int64_t)(&o.Stride[0]), (*C.int64_t)(&o.Padding[0]), (*C.int64_t)(&o.Dilation[0]),
		C.int64_t(o.Groups), &out), out)
}

// LayerNorm normalises over the trailing dims given by shape, then scales by
// w and shifts by b when they are not nil.
func LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	hs, bad := operands("layer_norm", x)
	if bad != nil {
		return bad
	}
	hw, bad := optHandle("layer_norm", w)
	if bad != nil {
		return bad
	}
	hb, bad := optHandle("layer_norm", b)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	p, n := int64s(shape)
	return result("layer_norm", C.tb_layer_norm(hs[0], p, n, hw, hb, C.double(eps), &out), out)
}

func softmax(op string, t *Tensor, dim int64, log bool) *Tensor {
	hs, bad := operands(op, t)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result(op, C.tb_softmax(hs[0], C.int64_t(dim), cBool(log), &out), out)
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

// Interpolate resizes x [N, C, H, W] to [N, C, h, w], as
// torch.nn.functional.interpolate with the given mode, align_corners and
// antialias (antialias matters when shrinking).
func Interpolate(x *Tensor, h, w int64, mode InterpMode, alignCorners, antialias bool) *Tensor {
	hs, bad := operands("interpolate", x)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("interpolate", C.tb_interpolate(hs[0], C.int(mode), C.int64_t(h), C.int64_t(w), cBool(alignCorners), cBool(antialias), &out), out)
}

// Padding selects grid_sample's treatment of points outside the input.
type Padding int

// grid_sample paddings; the values equal the bridge's codes.
const (
	PadZeros Padding = iota
	PadBorder
	PadReflection
)

// GridSample samples x [N, C, H, W] at grid [N, h, w, 2] (x, y in [-1, 1]),
// as torch.nn.functional.grid_sample.
func GridSample(x, grid *Tensor, mode InterpMode, pad Padding, alignCorners bool) *Tensor {
	hs, bad := operands("grid_sample", x, grid)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("grid_sample", C.tb_grid_sample(hs[0], hs[1], C.int(mode), C.int(pad), cBool(alignCorners), &out), out)
}

// AffineGrid turns affine matrices theta [N, 2, 3] into a sampling grid
// [N, H, W, 2] for an output of size [N, C, H, W].
func AffineGrid(theta *Tensor, size [4]int64, alignCorners bool) *Tensor {
	hs, bad := operands("affine_grid", theta)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("affine_grid", C.tb_affine_grid(hs[0], (*C.int64_t)(&size[0]), 4, cBool(alignCorners), &out), out)
}

// Attention is softmax(q·kᵀ·scale + mask)·v over the last two dims
// (q [..., L, d], k [..., S, d], v [..., S, dv] → [..., L, dv]). mask may be
// nil, boolean (true attends) or additive; causal adds the lower-triangular
// mask; scale <= 0 means 1/√d. libtorch 2.x runs the fused kernel, 1.13 the
// same math step by step.
func Attention(q, k, v, mask *Tensor, causal bool, scale float64) *Tensor {
	hs, bad := operands("attention", q, k, v)
	if bad != nil {
		return bad
	}
	hm, bad := optHandle("attention", mask)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("attention", C.tb_attention(hs[0], hs[1], hs[2], hm, cBool(causal), C.double(scale), &out), out)
}

// Embedding looks up rows of weight [V, D] for int64 ids of any shape.
func Embedding(weight, ids *Tensor) *Tensor {
	hs, bad := operands("embedding", weight, ids)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result("embedding", C.tb_embedding(hs[0], hs[1], &out), out)
}
