package torch

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssBytes reads the process's resident set size from /proc.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// 1,000 training steps of a small MLP with Adam: every step's intermediates
// are freed by its scope, so the live-tensor count returns to its baseline
// and the resident memory stays flat.
func TestTrainingLoopLeaksNothing(t *testing.T) {
	err := Do(func() error {
		base := LiveTensors()
		g, err := NewGenerator(1)
		if err != nil {
			return err
		}
		defer g.Free()
		params := NewStore()
		defer params.Free()
		setup := NewScope()
		for _, p := range []struct {
			name  string
			shape []int64
		}{{"w1", []int64{32, 8}}, {"b1", []int64{32}}, {"w2", []int64{1, 32}}, {"b2", []int64{1}}} {
			if err := params.Add(p.name, Randn(g, Float32, CPU, p.shape...).MulScalar(0.3)); err != nil {
				return err
			}
		}
		for _, p := range params.Tensors() {
			p.SetRequiresGrad(true)
		}
		opt, err := NewAdam(params.Tensors(), DefaultAdam())
		if err != nil {
			return err
		}
		defer opt.Free()
		x := Randn(g, Float32, CPU, 64, 8).Persist()
		defer x.Free()
		y := x.SumDims(KeepDims, 1).Sin().Persist() // a smooth target
		defer y.Free()
		setup.Close()
		w1, _ := params.Get("w1")
		b1, _ := params.Get("b1")
		w2, _ := params.Get("w2")
		b2, _ := params.Get("b2")
		step := func() (float64, error) {
			var loss float64
			err := Scoped(func(s *Scope) error {
				if err := opt.ZeroGrad(); err != nil {
					return err
				}
				pred := Linear(Linear(x, w1, b1).Tanh(), w2, b2)
				l := pred.Sub(y).Square().Mean()
				if err := l.Backward(); err != nil {
					return err
				}
				if err := opt.Step(); err != nil {
					return err
				}
				loss, err = l.Item()
				return err
			})
			return loss, err
		}
		first, err := step()
		if err != nil {
			return err
		}
		for range 99 {
			if _, err := step(); err != nil {
				return err
			}
		}
		live := LiveTensors()
		rss := rssBytes(t)
		var last float64
		for range 900 {
			if last, err = step(); err != nil {
				return err
			}
		}
		if d := LiveTensors() - live; d != 0 {
			t.Errorf("live tensors grew by %d over 900 steps", d)
		}
		if grow := rssBytes(t) - rss; grow > 16<<20 {
			t.Errorf("RSS grew by %d KiB over 900 steps", grow>>10)
		}
		if !(last < first/4) {
			t.Errorf("loss did not fall: %.4f → %.4f", first, last)
		}
		x.Free()
		y.Free()
		params.Free()
		if d := LiveTensors() - base; d != 0 {
			t.Errorf("%d tensors left after freeing everything", d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
