package torch

import (
	"errors"
	"strings"
	"testing"
)

// Every libtorch failure comes back as an error value with a kind; the
// process carries on.
func TestErrorsBecomeValues(t *testing.T) {
	run(t, func(s *Scope) error {
		a := Zeros(Float32, CPU, 2, 3)
		e := a.Matmul(Zeros(Float32, CPU, 4, 5)).Err()
		var te *Error
		if !errors.As(e, &te) || te.Kind != KindTorch || te.Op != "matmul" || !strings.Contains(te.Msg, "2x3") {
			t.Errorf("shape mismatch: %#v", e)
		}
		if strings.Contains(e.Error(), "Exception raised from") || strings.Contains(e.Error(), "frame #") {
			t.Errorf("message carries a C++ backtrace: %q", e)
		}
		// Sticky: later ops carry the same error and do not call libtorch.
		if e2 := a.Matmul(Zeros(Float32, CPU, 4, 5)).AddScalar(1).Exp().Err(); e2 == nil || !strings.Contains(e2.Error(), "matmul") {
			t.Errorf("sticky error lost: %v", e2)
		}
		// Backward of a non-scalar.
		x := Ones(Float32, CPU, 3)
		x.SetRequiresGrad(true)
		if err := x.MulScalar(2).Backward(); err == nil || !strings.Contains(err.Error(), "scalar") {
			t.Errorf("non-scalar backward: %v", err)
		}
		// Backward of something that needs no gradient.
		if err := Ones(Float32, CPU).Backward(); err == nil {
			t.Error("backward without a graph accepted")
		}
		// Index errors keep their kind.
		ie := a.Select(1, 7).Err()
		if !errors.As(ie, &te) || te.Kind != KindIndex {
			t.Errorf("index error kind: %#v", ie)
		}
		// Out of memory is its own kind (an exabyte-sized allocation).
		oom := Empty(Float32, CPU, 1<<30, 1<<30).Err()
		if !errors.Is(oom, ErrOOM) {
			t.Errorf("huge allocation: want ErrOOM, got %v", oom)
		}
		// Nil operands and freed tensors.
		var none *Tensor
		if err := a.Add(none).Err(); !errors.Is(err, ErrArgument) {
			t.Errorf("nil operand: %v", err)
		}
		f := Zeros(Float32, CPU, 1)
		f.Free()
		if err := f.Exp().Err(); !errors.Is(err, ErrFreed) {
			t.Errorf("freed operand: %v", err)
		}
		if _, err := f.Float32s(); !errors.Is(err, ErrFreed) {
			t.Errorf("freed read: %v", err)
		}
		// Bad arguments the bridge rejects itself.
		if err := Interpolate(a, 2, 2, Resize{Mode: Bilinear}).Err(); !errors.Is(err, ErrArgument) {
			t.Errorf("3-D interpolate: %v", err)
		}
		if err := Interpolate(Zeros(Float32, CPU, 1, 1, 2, 2), 4, 4, Resize{Mode: InterpMode(9)}).Err(); !errors.Is(err, ErrArgument) {
			t.Errorf("bad mode: %v", err)
		}
		if err := Zeros(DType(42), CPU, 1).Err(); !errors.Is(err, ErrArgument) {
			t.Errorf("bad dtype: %v", err)
		}
		s.err = nil
		return nil
	})
}

// A CUDA device on a CPU-only bridge is an error, not a crash.
func TestBadDevice(t *testing.T) {
	if CUDAAvailable() {
		t.Skip("CUDA is available here")
	}
	run(t, func(s *Scope) error {
		err := Zeros(Float32, CPU, 2).ToDevice(CUDA(0)).Err()
		if err == nil {
			t.Error("move to CUDA succeeded without CUDA")
		}
		if err := Zeros(Float32, CUDA(0), 2).Err(); err == nil {
			t.Error("CUDA allocation succeeded without CUDA")
		}
		if err := Synchronize(CUDA(0)); err == nil {
			t.Error("CUDA synchronize succeeded without CUDA")
		}
		s.err = nil
		return nil
	})
}
