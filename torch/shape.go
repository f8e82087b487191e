package torch

/*
#include "tb.h"
*/
import "C"

func reshape(op string, t *Tensor, shape []int64, view bool) *Tensor {
	p, n := int64s(shape)
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_reshape(hs[0], p, n, cBool(view), out)
	}, t)
}

// Reshape returns the same elements in the given shape (one size may be -1),
// copying only when the memory layout requires it.
func (t *Tensor) Reshape(shape ...int64) *Tensor { return reshape("reshape", t, shape, false) }

// View is Reshape without a copy: it fails when the layout does not allow it.
func (t *Tensor) View(shape ...int64) *Tensor { return reshape("view", t, shape, true) }

// Permute reorders the dimensions.
func (t *Tensor) Permute(dims ...int64) *Tensor {
	p, n := int64s(dims)
	return apply("permute", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_permute(hs[0], p, n, out)
	}, t)
}

// Transpose swaps two dimensions.
func (t *Tensor) Transpose(d0, d1 int64) *Tensor {
	return apply("transpose", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_transpose(hs[0], C.int64_t(d0), C.int64_t(d1), out)
	}, t)
}

// Narrow takes length elements of dim starting at start (a view).
func (t *Tensor) Narrow(dim, start, length int64) *Tensor {
	return apply("narrow", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_narrow(hs[0], C.int64_t(dim), C.int64_t(start), C.int64_t(length), out)
	}, t)
}

// Select takes element index of dim, removing that dimension (a view).
func (t *Tensor) Select(dim, index int64) *Tensor {
	return apply("select", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_select(hs[0], C.int64_t(dim), C.int64_t(index), out)
	}, t)
}

// IndexSelect gathers the entries of dim listed in index (an int64 tensor).
func (t *Tensor) IndexSelect(dim int64, index *Tensor) *Tensor {
	return apply("index_select", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_index_select(hs[0], C.int64_t(dim), hs[1], out)
	}, t, index)
}

func catOrStack(op string, dim int64, stack bool, ts []*Tensor) *Tensor {
	if len(ts) == 0 {
		return failed(argError(op, "no tensors"))
	}
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_cat(&hs[0], C.int(len(hs)), C.int64_t(dim), cBool(stack), out)
	}, ts...)
}

// Cat concatenates tensors along an existing dimension.
func Cat(dim int64, ts ...*Tensor) *Tensor { return catOrStack("cat", dim, false, ts) }

// Stack joins tensors of equal shape along a new dimension.
func Stack(dim int64, ts ...*Tensor) *Tensor { return catOrStack("stack", dim, true, ts) }

// Expand broadcasts size-1 dimensions to the given shape (-1 keeps a size).
func (t *Tensor) Expand(shape ...int64) *Tensor {
	p, n := int64s(shape)
	return apply("expand", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_expand(hs[0], p, n, out)
	}, t)
}

// Unsqueeze inserts a dimension of size 1 at dim.
func (t *Tensor) Unsqueeze(dim int64) *Tensor {
	return apply("unsqueeze", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_unsqueeze(hs[0], C.int64_t(dim), out)
	}, t)
}

// Squeeze removes dimension dim when its size is 1.
func (t *Tensor) Squeeze(dim int64) *Tensor {
	return apply("squeeze", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_squeeze(hs[0], C.int64_t(dim), out)
	}, t)
}

// Flatten merges dimensions start..end (inclusive) into one.
func (t *Tensor) Flatten(start, end int64) *Tensor {
	return apply("flatten", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_flatten(hs[0], C.int64_t(start), C.int64_t(end), out)
	}, t)
}
