package torch

import (
	"math"
	"testing"
)

// One Adam step against the closed form: with m = (1-β1)g, v = (1-β2)g²,
// the update is lr·m̂/(√v̂+ε) with m̂ = g, v̂ = g², i.e. lr·g/(|g|+ε); weight
// decay adds wd·p to g first.
func TestAdamFirstStepClosedForm(t *testing.T) {
	run(t, func(s *Scope) error {
		p0 := []float64{0.5, -1, 2, 0}
		g := []float64{0.1, -0.2, 3, 1e-3}
		cfg := AdamConfig{LR: 0.01, Beta1: 0.5, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
		p := FromSlice(p0)
		if err := p.SetRequiresGrad(true); err != nil {
			return err
		}
		opt, err := NewAdam([]*Tensor{p}, cfg)
		if err != nil {
			return err
		}
		defer opt.Free()
		// loss = Σ g·p gives gradient g.
		if err := p.Mul(FromSlice(g)).Sum().Backward(); err != nil {
			return err
		}
		if err := opt.Step(); err != nil {
			return err
		}
		want := make([]float64, 4)
		for i := range p0 {
			gi := g[i] + cfg.WeightDecay*p0[i]
			want[i] = p0[i] - cfg.LR*gi/(math.Abs(gi)+cfg.Eps)
		}
		near(t, "adam step 1", f64(t, p), want, 1e-12)
		if opt.Steps() != 1 {
			t.Errorf("steps %d", opt.Steps())
		}
		m, v, err := opt.State(0)
		if err != nil {
			return err
		}
		gm := make([]float64, 4)
		gv := make([]float64, 4)
		for i := range g {
			gi := g[i] + cfg.WeightDecay*p0[i]
			gm[i] = (1 - cfg.Beta1) * gi
			gv[i] = (1 - cfg.Beta2) * gi * gi
		}
		near(t, "m", f64(t, m), gm, 1e-12)
		near(t, "v", f64(t, v), gv, 1e-12)

		// A second step from the same gradient, by the textbook formula.
		if err := opt.ZeroGrad(); err != nil {
			return err
		}
		if p.Grad() != nil {
			t.Error("gradient survived ZeroGrad")
		}
		p1 := f64(t, p)
		if err := p.Mul(FromSlice(g)).Sum().Backward(); err != nil {
			return err
		}
		if err := opt.Step(); err != nil {
			return err
		}
		for i := range p1 {
			gi := g[i] + cfg.WeightDecay*p1[i]
			m2 := cfg.Beta1*gm[i] + (1-cfg.Beta1)*gi
			v2 := cfg.Beta2*gv[i] + (1-cfg.Beta2)*gi*gi
			mh := m2 / (1 - cfg.Beta1*cfg.Beta1)
			vh := v2 / (1 - cfg.Beta2*cfg.Beta2)
			want[i] = p1[i] - cfg.LR*mh/(math.Sqrt(vh)+cfg.Eps)
		}
		near(t, "adam step 2", f64(t, p), want, 1e-12)
		return nil
	})
}

// Restoring the step count and moments into a fresh optimizer continues
// exactly where the first left off (what --resume relies on).
func TestAdamStateRestore(t *testing.T) {
	run(t, func(s *Scope) error {
		step := func(p *Tensor, o *Adam) error {
			if err := o.ZeroGrad(); err != nil {
				return err
			}
			if err := p.Square().Sum().Backward(); err != nil {
				return err
			}
			return o.Step()
		}
		a := FromSlice([]float64{1, -2, 3})
		b := FromSlice([]float64{1, -2, 3})
		a.SetRequiresGrad(true)
		b.SetRequiresGrad(true)
		oa, _ := NewAdam([]*Tensor{a}, DefaultAdam())
		defer oa.Free()
		for range 3 {
			if err := step(a, oa); err != nil {
				return err
			}
		}
		// b takes the same three steps with another optimizer, then moves to a third.
		ob, _ := NewAdam([]*Tensor{b}, DefaultAdam())
		for range 3 {
			if err := step(b, ob); err != nil {
				return err
			}
		}
		m, v, _ := ob.State(0)
		steps := ob.Steps()
		ob.Free()
		oc, _ := NewAdam([]*Tensor{b}, DefaultAdam())
		defer oc.Free()
		if err := oc.SetState(steps, 0, m, v); err != nil {
			return err
		}
		if err := step(a, oa); err != nil {
			return err
		}
		if err := step(b, oc); err != nil {
			return err
		}
		near(t, "resumed", f64(t, b), f64(t, a), 0)
		if err := oc.SetState(1, 0, FromSlice([]float64{1}), FromSlice([]float64{1})); err == nil {
			t.Error("moment of the wrong shape accepted")
		}
		if _, err := NewAdam([]*Tensor{FromSlice([]int64{1})}, DefaultAdam()); err == nil {
			t.Error("integer parameter accepted")
		}
		if _, err := NewAdam(nil, AdamConfig{LR: 1, Beta1: 1, Beta2: 0.9}); err == nil {
			t.Error("beta1 = 1 accepted")
		}
		return nil
	})
}
