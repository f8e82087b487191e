package torch

/*
#include "tb.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// Tensor is a handle to a libtorch tensor, owned by Go exactly once.
//
// Errors are sticky: an operation that fails returns a Tensor that carries
// the error, and every operation on such a tensor returns the same error
// without calling libtorch. Check Err (or the scope's Err) once at the end of
// a computation.
//
// A tensor created inside a Scope is freed when the scope closes, unless it
// was kept; one created outside every scope is freed by Free.
type Tensor struct {
	h     *C.tb_tensor
	err   error
	scope *Scope
}

// Info is a tensor's metadata, read in one bridge call.
type Info struct {
	DType        DType
	Device       Device
	Shape        []int64
	Numel        int64
	RequiresGrad bool
	IsLeaf       bool
}

// newTensor wraps a handle the bridge returned and registers it with the
// innermost open scope.
func newTensor(h *C.tb_tensor) *Tensor {
	t := &Tensor{h: h}
	if s := scopes.top; s != nil {
		t.scope = s
		s.owned = append(s.owned, t)
	}
	return t
}

// failed returns a tensor carrying a new error, which is also recorded on the
// innermost scope so that it cannot go unnoticed.
func failed(err error) *Tensor {
	if s := scopes.top; s != nil && s.err == nil {
		s.err = err
	}
	return &Tensor{err: err}
}

// handle returns the C handle of an operand, or the error the operation must
// propagate. propagated is true when the error came from the operand itself.
func (t *Tensor) handle(op string) (h *C.tb_tensor, err error, propagated bool) {
	switch {
	case t == nil:
		return nil, argError(op, "nil tensor"), false
	case t.err != nil:
		return nil, t.err, true
	case t.h == nil:
		return nil, &Error{Kind: KindFreed, Op: op, Msg: "tensor used after Free"}, false
	}
	return t.h, nil, false
}

// operands gathers handles for an operation; on failure it returns the tensor
// the operation must return.
func operands(op string, ts ...*Tensor) ([]*C.tb_tensor, *Tensor) {
	return operandsOpt(op, len(ts), ts...)
}

// operandsOpt is operands where the tensors after the first required may be
// nil (optional operands such as a bias), giving nil handles.
func operandsOpt(op string, required int, ts ...*Tensor) ([]*C.tb_tensor, *Tensor) {
	hs := make([]*C.tb_tensor, len(ts))
	for i, t := range ts {
		if i >= required && t == nil {
			continue
		}
		h, err, prop := t.handle(op)
		if err != nil {
			if prop {
				return nil, &Tensor{err: err}
			}
			return nil, failed(err)
		}
		hs[i] = h
	}
	return hs, nil
}

// result turns a bridge call's outcome into a Tensor.
func result(op string, e *C.tb_error, out *C.tb_tensor) *Tensor {
	if err := check(op, e); err != nil {
		return failed(err)
	}
	return newTensor(out)
}

// bridgeCall is one bridge entry point applied to operand handles.
type bridgeCall func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error

// apply runs call on the handles of ts and wraps its result; an operand's
// error is propagated without calling the bridge.
func apply(op string, call bridgeCall, ts ...*Tensor) *Tensor {
	return applyOpt(op, call, len(ts), ts...)
}

// applyOpt is apply where the operands after the first required may be nil.
func applyOpt(op string, call bridgeCall, required int, ts ...*Tensor) *Tensor {
	hs, bad := operandsOpt(op, required, ts...)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	return result(op, call(hs, &out), out)
}

// Err is the error this tensor carries, or nil.
func (t *Tensor) Err() error {
	if t == nil {
		return argError("", "nil tensor")
	}
	return t.err
}

// Free releases the handle now. Freeing twice, or freeing a tensor that
// carries an error, does nothing.
func (t *Tensor) Free() {
	if t == nil || t.h == nil {
		return
	}
	C.tb_free(t.h)
	t.h = nil
}

// Persist takes the tensor out of its scope (whichever that is): it then
// lives until Free. It returns t. This is the one way to make a tensor
// outlive the scopes around it; Keep moves it up by one scope only.
func (t *Tensor) Persist() *Tensor {
	if t != nil {
		t.scope = nil
	}
	return t
}

// Info reads the tensor's metadata.
func (t *Tensor) Info() (Info, error) {
	h, err, _ := t.handle("info")
	if err != nil {
		return Info{}, err
	}
	var ci C.tb_info
	if err := check("info", C.tb_get_info(h, &ci)); err != nil {
		return Info{}, err
	}
	in := Info{
		DType:        DType(ci.dtype),
		Device:       Device{Type: DeviceType(ci.device_type), Index: int(ci.device_index)},
		Shape:        make([]int64, int(ci.ndim)),
		Numel:        int64(ci.numel),
		RequiresGrad: ci.requires_grad != 0,
		IsLeaf:       ci.is_leaf != 0,
	}
	for i := range in.Shape {
		in.Shape[i] = int64(ci.shape[i])
	}
	return in, nil
}

// Shape is the tensor's size per dimension.
//
// Shape, Dim, Size, DType, Device and Numel are for tensors known to be
// valid: on a tensor carrying an error they return a zero value (nil, -1,
// Float32, the CPU, 0), and an operation built from those values still
// fails with the tensor's own error. Code that branches on a shape or
// indexes into it reads Info instead, which returns the error.
func (t *Tensor) Shape() []int64 {
	in, err := t.Info()
	if err != nil {
		return nil
	}
	return in.Shape
}

// Dim is the number of dimensions (-1 on error).
func (t *Tensor) Dim() int {
	in, err := t.Info()
	if err != nil {
		return -1
	}
	return len(in.Shape)
}

// Size is the size of dimension d; negative d counts from the end. It is -1
// on error or for an out-of-range d.
func (t *Tensor) Size(d int) int64 {
	s := t.Shape()
	if d < 0 {
		d += len(s)
	}
	if d < 0 || d >= len(s) {
		return -1
	}
	return s[d]
}

// DType is the element type (Float32 on error).
func (t *Tensor) DType() DType {
	in, _ := t.Info()
	return in.DType
}

// Device is where the tensor lives (the CPU on error).
func (t *Tensor) Device() Device {
	in, _ := t.Info()
	return in.Device
}

// Numel is the number of elements (0 on error).
func (t *Tensor) Numel() int64 {
	in, _ := t.Info()
	return in.Numel
}

// String describes the tensor for logs and error messages, not its values.
func (t *Tensor) String() string {
	in, err := t.Info()
	if err != nil {
		return fmt.Sprintf("Tensor(error: %v)", err)
	}
	dims := make([]string, len(in.Shape))
	for i, s := range in.Shape {
		dims[i] = fmt.Sprint(s)
	}
	return fmt.Sprintf("Tensor[%s %s %s]", strings.Join(dims, "x"), in.DType, in.Device)
}

// Scope collects the tensors created while it is the innermost open scope and
// frees them when it closes. Scopes nest; they belong to the compute thread.
type Scope struct {
	parent *Scope
	owned  []*Tensor
	err    error
	closed bool
}

// scopes is the stack of open scopes (the compute thread's alone).
var scopes struct{ top *Scope }

// NewScope opens a scope nested in the current one. Close it with Close,
// normally deferred.
func NewScope() *Scope {
	s := &Scope{parent: scopes.top}
	scopes.top = s
	return s
}

// Close frees every tensor the scope still owns and makes its parent the
// innermost scope again. Scopes opened inside it and left open are closed
// first. Closing twice does nothing.
func (s *Scope) Close() {
	if s == nil || s.closed {
		return
	}
	for scopes.top != nil && scopes.top != s {
		scopes.top.Close()
	}
	for _, t := range s.owned {
		if t.scope == s {
			t.Free()
			t.scope = nil
		}
	}
	s.owned = nil
	s.closed = true
	if scopes.top == s {
		scopes.top = s.parent
	}
}

// Keep moves tensors to the enclosing scope (or out of all scopes when this
// is the outermost), so that they survive Close. It returns its first
// argument for convenience.
func (s *Scope) Keep(ts ...*Tensor) *Tensor {
	for _, t := range ts {
		if t == nil || t.scope != s {
			continue
		}
		t.scope = s.parent
		if s.parent != nil {
			s.parent.owned = append(s.parent.owned, t)
		}
	}
	if len(ts) == 0 {
		return nil
	}
	return ts[0]
}

// Err is the first error raised by an operation inside the scope.
func (s *Scope) Err() error { return s.err }

// Scoped runs fn in a new scope and closes it afterwards. It returns fn's
// error, or else the first error an operation raised inside the scope.
func Scoped(fn func(s *Scope) error) error {
	s := NewScope()
	defer s.Close()
	if err := fn(s); err != nil {
		return err
	}
	return s.err
}

// Local runs fn in a scope of its own and keeps only the tensors it
// returns (moved to the enclosing scope): every other tensor fn creates is
// freed as soon as it returns, the granularity at which PyTorch frees (a
// transformer block, an adapter, a loss term). Autograd keeps what backward
// needs by itself. The first error raised inside carries over to the
// enclosing scope.
func Local(fn func() []*Tensor) []*Tensor {
	s := NewScope()
	defer s.Close()
	out := fn()
	s.Keep(out...)
	if s.err != nil && s.parent != nil && s.parent.err == nil {
		s.parent.err = s.err
	}
	return out
}

// Local1 is Local for a function of one result.
func Local1(fn func() *Tensor) *Tensor {
	return Local(func() []*Tensor { return []*Tensor{fn()} })[0]
}

// Failed returns a tensor carrying an argument error raised by code above
// the bridge (such as a model finding an input of the wrong shape); like any
// failed op it is recorded on the innermost scope.
func Failed(op, format string, a ...any) *Tensor {
	return failed(argError(op, format, a...))
}
