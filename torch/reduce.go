package torch

/*
#include "tb.h"
*/
import "C"

// KeepDim says whether a reduction keeps each reduced dimension with size 1
// (PyTorch's keepdim=True: [B, N] → [B, 1]) or drops it ([B, N] → [B]).
type KeepDim bool

const (
	DropDims KeepDim = false
	KeepDims KeepDim = true
)

func reduce(op string, code C.int, t *Tensor, keep KeepDim, dims []int64) *Tensor {
	p, n := int64s(dims)
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_reduce(code, hs[0], p, n, cBool(bool(keep)), out)
	}, t)
}

// Sum adds all elements into a scalar tensor.
func (t *Tensor) Sum() *Tensor { return reduce("sum", C.TB_SUM, t, DropDims, nil) }

// SumDims adds over the given dimensions.
func (t *Tensor) SumDims(keepdim KeepDim, dims ...int64) *Tensor {
	if len(dims) == 0 {
		return failed(argError("sum", "no dimensions given (use Sum for all)"))
	}
	return reduce("sum", C.TB_SUM, t, keepdim, dims)
}

// Mean averages all elements into a scalar tensor.
func (t *Tensor) Mean() *Tensor { return reduce("mean", C.TB_MEAN, t, DropDims, nil) }

// MeanDims averages over the given dimensions.
func (t *Tensor) MeanDims(keepdim KeepDim, dims ...int64) *Tensor {
	if len(dims) == 0 {
		return failed(argError("mean", "no dimensions given (use Mean for all)"))
	}
	return reduce("mean", C.TB_MEAN, t, keepdim, dims)
}

// Max is the largest element (a scalar tensor).
func (t *Tensor) Max() *Tensor { return reduce("amax", C.TB_AMAX, t, DropDims, nil) }

// Min is the smallest element (a scalar tensor).
func (t *Tensor) Min() *Tensor { return reduce("amin", C.TB_AMIN, t, DropDims, nil) }

// AmaxDims is the largest element over the given dimensions.
func (t *Tensor) AmaxDims(keepdim KeepDim, dims ...int64) *Tensor {
	if len(dims) == 0 {
		return failed(argError("amax", "no dimensions given (use Max for all)"))
	}
	return reduce("amax", C.TB_AMAX, t, keepdim, dims)
}

// Prod multiplies all elements.
func (t *Tensor) Prod() *Tensor { return reduce("prod", C.TB_PROD, t, DropDims, nil) }

func maxDim(op string, t *Tensor, dim int64, keepdim KeepDim, min bool) (values, indices *Tensor) {
	hs, bad := operands(op, t)
	if bad != nil {
		return bad, bad
	}
	var v, i *C.tb_tensor
	if err := check(op, C.tb_max_dim(hs[0], C.int64_t(dim), cBool(bool(keepdim)), cBool(min), &v, &i)); err != nil {
		f := failed(err)
		return f, f
	}
	return newTensor(v), newTensor(i)
}

// MaxDim is the largest element along dim and its index.
func (t *Tensor) MaxDim(dim int64, keepdim KeepDim) (values, indices *Tensor) {
	return maxDim("max", t, dim, keepdim, false)
}

// MinDim is the smallest element along dim and its index.
func (t *Tensor) MinDim(dim int64, keepdim KeepDim) (values, indices *Tensor) {
	return maxDim("min", t, dim, keepdim, true)
}

// Argmax is the index of the largest element along dim.
func (t *Tensor) Argmax(dim int64, keepdim KeepDim) *Tensor {
	return apply("argmax", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_argmax(hs[0], C.int64_t(dim), cBool(bool(keepdim)), out)
	}, t)
}

// Norm is the p-norm over the given dimensions (all when none are given).
func (t *Tensor) Norm(p float64, keepdim KeepDim, dims ...int64) *Tensor {
	dp, n := int64s(dims)
	return apply("norm", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_norm(hs[0], C.double(p), dp, n, cBool(bool(keepdim)), out)
	}, t)
}

// Normalize divides by the L2 norm along dim, floored at eps (1e-12 when eps
// is 0), as torch.nn.functional.normalize does.
func (t *Tensor) Normalize(dim int64, eps float64) *Tensor {
	if eps == 0 {
		eps = 1e-12
	}
	return apply("normalize", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_l2_normalize(hs[0], C.int64_t(dim), C.double(eps), out)
	}, t)
}

// NonFinite counts the tensor's NaN and infinite values: the sign of a run
// that diverged or of corrupt data. Its temporaries are freed at once.
func (t *Tensor) NonFinite() (int64, error) {
	var n float64
	err := NoGrad(func() error {
		return Scoped(func(s *Scope) error {
			var err error
			n, err = t.IsFinite().LogicalNot().Sum().Item()
			return err
		})
	})
	return int64(n), err
}
