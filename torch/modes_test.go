package torch

import (
	"errors"
	"sync"
	"testing"
)

func TestDoRunsOnOneLockedThread(t *testing.T) {
	var mu sync.Mutex
	tids := map[bool]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = Do(func() error {
				mu.Lock()
				tids[OnComputeThread()]++
				mu.Unlock()
				// Nested Do runs inline instead of deadlocking.
				return Do(func() error { return nil })
			})
		}()
	}
	wg.Wait()
	if tids[true] != 8 || tids[false] != 0 {
		t.Errorf("Do ran off the compute thread: %v", tids)
	}
	if OnComputeThread() {
		t.Error("the test goroutine claims to be the compute thread")
	}
	want := errors.New("boom")
	if err := Do(func() error { return want }); err != want {
		t.Errorf("error not returned: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "bang" {
				t.Errorf("panic not re-raised: %v", r)
			}
		}()
		_ = Do(func() error { panic("bang") })
	}()
	// The compute thread still works after a panic.
	if err := Do(func() error { return nil }); err != nil {
		t.Error(err)
	}
}

// A no-grad scope really holds for the operations inside it, and the mode is
// restored afterwards.
func TestNoGradScope(t *testing.T) {
	run(t, func(s *Scope) error {
		x := Ones(Float32, CPU, 3)
		x.SetRequiresGrad(true)
		if !GradEnabled() || !x.MulScalar(2).RequiresGrad() {
			t.Fatal("grad mode is off by default")
		}
		err := NoGrad(func() error {
			if GradEnabled() {
				t.Error("GradEnabled inside NoGrad")
			}
			y := x.MulScalar(2).Exp()
			if y.RequiresGrad() {
				t.Error("op inside NoGrad records a graph")
			}
			return WithGrad(func() error {
				if !x.MulScalar(2).RequiresGrad() {
					t.Error("WithGrad inside NoGrad does not record")
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		if !GradEnabled() || !x.MulScalar(2).RequiresGrad() {
			t.Error("grad mode not restored after NoGrad")
		}
		return nil
	})
}

// An autocast scope really changes the dtype of matmuls inside it (bf16 on
// the CPU here, as on CUDA), leaves other ops alone, and is
// undone afterwards.
func TestAutocastScope(t *testing.T) {
	run(t, func(s *Scope) error {
		a := Randn(nil, Float32, CPU, 4, 4)
		if AutocastEnabled(DeviceCPU) {
			t.Fatal("autocast on by default")
		}
		err := Autocast(DeviceCPU, BFloat16, func() error {
			if !AutocastEnabled(DeviceCPU) {
				t.Error("AutocastEnabled false inside Autocast")
			}
			if d := a.Matmul(a).DType(); d != BFloat16 {
				t.Errorf("matmul under autocast gives %v, want bf16", d)
			}
			if d := Linear(a, a, nil).DType(); d != BFloat16 {
				t.Errorf("linear under autocast gives %v, want bf16", d)
			}
			if d := a.Add(a).DType(); d != Float32 {
				t.Errorf("add under autocast gives %v, want f32", d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if AutocastEnabled(DeviceCPU) {
			t.Error("autocast still on after the scope")
		}
		if d := a.Matmul(a).DType(); d != Float32 {
			t.Errorf("matmul after autocast gives %v", d)
		}
		if err := Autocast(DeviceCPU, Float32, func() error { return nil }); err == nil {
			t.Error("autocast to f32 accepted")
		}
		return nil
	})
}
