package torch

/*
#include "tb.h"
*/
import "C"

import "unsafe"

func filled(op string, kind C.int, value float64, dt DType, dev Device, shape []int64) *Tensor {
	for _, s := range shape {
		if s < 0 {
			return failed(argError(op, "negative dimension in shape %v", shape))
		}
	}
	var out *C.tb_tensor
	p, n := int64s(shape)
	return result(op, C.tb_new_filled(kind, p, n, C.double(value), C.int(dt), C.int(dev.Type), C.int(dev.Index), &out), out)
}

// Empty returns an uninitialised tensor.
func Empty(dt DType, dev Device, shape ...int64) *Tensor {
	return filled("empty", 0, 0, dt, dev, shape)
}

// TryEmpty is Empty for an allocation whose failure the caller handles (a
// feature cache that moves to host memory when the GPU is full): the error
// is returned, not recorded on the enclosing scope, whose work goes on.
func TryEmpty(dt DType, dev Device, shape ...int64) (*Tensor, error) {
	for _, s := range shape {
		if s < 0 {
			return nil, argError("empty", "negative dimension in shape %v", shape)
		}
	}
	var out *C.tb_tensor
	p, n := int64s(shape)
	if err := check("empty", C.tb_new_filled(0, p, n, 0, C.int(dt), C.int(dev.Type), C.int(dev.Index), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// Zeros returns a tensor of zeros.
func Zeros(dt DType, dev Device, shape ...int64) *Tensor {
	return filled("zeros", 1, 0, dt, dev, shape)
}

// Ones returns a tensor of ones.
func Ones(dt DType, dev Device, shape ...int64) *Tensor {
	return filled("ones", 2, 0, dt, dev, shape)
}

// Full returns a tensor filled with value.
func Full(value float64, dt DType, dev Device, shape ...int64) *Tensor {
	return filled("full", 3, value, dt, dev, shape)
}

// Arange returns the values start, start+step, ... below end.
func Arange(start, end, step float64, dt DType, dev Device) *Tensor {
	var out *C.tb_tensor
	return result("arange", C.tb_arange(C.double(start), C.double(end), C.double(step), C.int(dt), C.int(dev.Type), C.int(dev.Index), &out), out)
}

func random(op string, normal bool, g *Generator, dt DType, dev Device, shape []int64) *Tensor {
	gh, err := g.handle()
	if err != nil {
		return failed(argError(op, "%v", err))
	}
	var out *C.tb_tensor
	p, n := int64s(shape)
	return result(op, C.tb_random(cBool(normal), p, n, C.int(dt), C.int(dev.Type), C.int(dev.Index), gh, &out), out)
}

// Randn draws from N(0, 1) with g, or with the default generator when g is nil.
func Randn(g *Generator, dt DType, dev Device, shape ...int64) *Tensor {
	return random("randn", true, g, dt, dev, shape)
}

// Rand draws from U[0, 1) with g, or with the default generator when g is nil.
func Rand(g *Generator, dt DType, dev Device, shape ...int64) *Tensor {
	return random("rand", false, g, dt, dev, shape)
}

// Element is a Go type with a tensor dtype of the same memory layout.
type Element interface {
	float32 | float64 | int64 | int32 | uint8 | bool
}

// DTypeOf is the tensor dtype matching the Go type T.
func DTypeOf[T Element]() DType {
	var z T
	switch any(z).(type) {
	case float64:
		return Float64
	case int64:
		return Int64
	case int32:
		return Int32
	case uint8:
		return Uint8
	case bool:
		return Bool
	}
	return Float32
}

// FromSlice copies data into a new CPU tensor of T's dtype. With no shape the
// tensor is 1-D; otherwise the shape's product must equal len(data).
func FromSlice[T Element](data []T, shape ...int64) *Tensor {
	if len(shape) == 0 {
		shape = []int64{int64(len(data))}
	}
	dt := DTypeOf[T]()
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return FromHost(p, len(data)*dt.Size(), dt, shape, dt, CPU)
}

// FromHost copies nbytes at p, laid out as src with the given shape, into a
// new tensor of dtype dt on dev. p must stay valid for the call only.
func FromHost(p unsafe.Pointer, nbytes int, src DType, shape []int64, dt DType, dev Device) *Tensor {
	var out *C.tb_tensor
	sp, n := int64s(shape)
	return result("from_host", C.tb_from_host(p, C.size_t(nbytes), sp, n, C.int(src), C.int(dt), C.int(dev.Type), C.int(dev.Index), &out), out)
}

// ToSlice copies the tensor's values, converted to T, into a new slice in
// row-major order. The tensor may live on any device.
func ToSlice[T Element](t *Tensor) ([]T, error) {
	h, err, _ := t.handle("to_slice")
	if err != nil {
		return nil, err
	}
	in, err := t.Info()
	if err != nil {
		return nil, err
	}
	dt := DTypeOf[T]()
	s := make([]T, in.Numel)
	var p unsafe.Pointer
	if len(s) > 0 {
		p = unsafe.Pointer(&s[0])
	}
	if err := check("to_slice", C.tb_to_host(h, C.int(dt), p, C.size_t(len(s)*dt.Size()))); err != nil {
		return nil, err
	}
	return s, nil
}

// Bytes copies the tensor's values, converted to dt, as raw little-endian bytes.
func (t *Tensor) Bytes(dt DType) ([]byte, error) {
	h, err, _ := t.handle("bytes")
	if err != nil {
		return nil, err
	}
	n := t.Numel()
	b := make([]byte, int(n)*dt.Size())
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	if err := check("bytes", C.tb_to_host(h, C.int(dt), p, C.size_t(len(b)))); err != nil {
		return nil, err
	}
	return b, nil
}

// Float32s copies the values as float32.
func (t *Tensor) Float32s() ([]float32, error) { return ToSlice[float32](t) }

// Float64s copies the values as float64.
func (t *Tensor) Float64s() ([]float64, error) { return ToSlice[float64](t) }

// Int64s copies the values as int64.
func (t *Tensor) Int64s() ([]int64, error) { return ToSlice[int64](t) }

// Item reads the single value of a one-element tensor.
func (t *Tensor) Item() (float64, error) {
	h, err, _ := t.handle("item")
	if err != nil {
		return 0, err
	}
	var v C.double
	if err := check("item", C.tb_item(h, &v)); err != nil {
		return 0, err
	}
	return float64(v), nil
}

// To converts the tensor to dtype dt on dev (a new reference when nothing
// changes). The conversion is differentiable.
func (t *Tensor) To(dt DType, dev Device) *Tensor {
	return apply("to", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_to(hs[0], C.int(dt), C.int(dev.Type), C.int(dev.Index), out)
	}, t)
}

// ToDevice moves the tensor to dev, keeping its dtype.
func (t *Tensor) ToDevice(dev Device) *Tensor {
	in, err := t.Info()
	if err != nil {
		return failedFrom(t, err)
	}
	return t.To(in.DType, dev)
}

// ToDType converts the tensor to dt, keeping its device.
func (t *Tensor) ToDType(dt DType) *Tensor {
	in, err := t.Info()
	if err != nil {
		return failedFrom(t, err)
	}
	return t.To(dt, in.Device)
}

// CastAs converts the tensor to like's dtype, keeping its own device: the
// cast a layer's float32 weight needs to meet a half-precision input. An
// error carried by either tensor is carried by the result.
func (t *Tensor) CastAs(like *Tensor) *Tensor {
	in, err := like.Info()
	if err != nil {
		return failedFrom(like, err)
	}
	return t.ToDType(in.DType)
}

// failedFrom returns a tensor for an error found while reading t: t's own
// error is propagated, a new one recorded.
func failedFrom(t *Tensor, err error) *Tensor {
	if t != nil && t.err != nil {
		return &Tensor{err: t.err}
	}
	return failed(err)
}
