package torch

import (
	"fmt"
	"math"
	"testing"
)

// input is a float64 test input: values and shape.
type input struct {
	v     []float64
	shape []int64
}

func in(seed uint64, lo, hi float64, shape ...int64) input {
	n := int64(1)
	for _, s := range shape {
		n *= s
	}
	return input{lcg(seed, int(n), lo, hi), shape}
}

// gradCheck compares the gradient autograd gives for sum(f(xs)·w), w a fixed
// random weight, with central finite differences in float64.
func gradCheck(t *testing.T, name string, f func(xs []*Tensor) *Tensor, inputs ...input) {
	t.Helper()
	if err := gradError(t, f, inputs...); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}

func gradError(t *testing.T, f func(xs []*Tensor) *Tensor, inputs ...input) error {
	const eps = 1e-6
	return Do(func() error {
		return Scoped(func(s *Scope) error {
			xs := make([]*Tensor, len(inputs))
			for i, x := range inputs {
				xs[i] = FromSlice(x.v, x.shape...)
				if err := xs[i].SetRequiresGrad(true); err != nil {
					return err
				}
			}
			y := f(xs)
			if err := y.Err(); err != nil {
				return err
			}
			w := FromSlice(lcg(99, int(y.Numel()), -1, 1), y.Shape()...)
			loss := func(xs []*Tensor) (float64, error) {
				var v float64
				err := NoGrad(func() error {
					return Scoped(func(s *Scope) error {
						var err error
						v, err = f(xs).Mul(w).Sum().Item()
						return err
					})
				})
				return v, err
			}
			if err := y.Mul(w).Sum().Backward(); err != nil {
				return err
			}
			for i, x := range inputs {
				g := xs[i].Grad()
				if g == nil {
					return fmt.Errorf("input %d has no gradient", i)
				}
				analytic := f64(t, g)
				numeric := make([]float64, len(x.v))
				for j := range x.v {
					probe := func(d float64) (float64, error) {
						v := append([]float64(nil), x.v...)
						v[j] += d
						ps := append([]*Tensor(nil), xs...)
						ps[i] = FromSlice(v, x.shape...)
						defer ps[i].Free()
						return loss(ps)
					}
					lp, err := probe(eps)
					if err != nil {
						return err
					}
					lm, err := probe(-eps)
					if err != nil {
						return err
					}
					numeric[j] = (lp - lm) / (2 * eps)
				}
				for j := range numeric {
					if d := math.Abs(analytic[j] - numeric[j]); d > 1e-5*(1+math.Abs(numeric[j])) {
						return fmt.Errorf("input %d element %d: autograd %.9g, finite difference %.9g", i, j, analytic[j], numeric[j])
					}
				}
			}
			return nil
		})
	})
}

func TestGradCheckCatchesWrongGradient(t *testing.T) {
	// d/dx (detach(x)·x) is detach(x) to autograd but 2x numerically.
	err := gradError(t, func(xs []*Tensor) *Tensor { return xs[0].Detach().Mul(xs[0]) }, in(1, 0.5, 2, 3))
	if err == nil {
		t.Fatal("gradient check accepted a wrong gradient")
	}
}

func TestGradients(t *testing.T) {
	x := in(1, -2, 2, 2, 3)
	y := in(2, -2, 2, 2, 3)
	pos := in(3, 0.5, 2, 2, 3)
	away := input{[]float64{-1.5, -0.7, -0.2, 0.3, 0.9, 1.6}, []int64{2, 3}} // no kinks at 0, ±1
	one := func(f func(a *Tensor) *Tensor) func([]*Tensor) *Tensor {
		return func(xs []*Tensor) *Tensor { return f(xs[0]) }
	}
	two := func(f func(a, b *Tensor) *Tensor) func([]*Tensor) *Tensor {
		return func(xs []*Tensor) *Tensor { return f(xs[0], xs[1]) }
	}
	cases := []struct {
		name string
		f    func([]*Tensor) *Tensor
		in   []input
	}{
		{"add", two((*Tensor).Add), []input{x, in(4, -1, 1, 3)}},
		{"sub", two((*Tensor).Sub), []input{x, y}},
		{"mul", two((*Tensor).Mul), []input{x, y}},
		{"div", two((*Tensor).Div), []input{x, pos}},
		{"pow", two((*Tensor).Pow), []input{pos, y}},
		{"maximum", two((*Tensor).Maximum), []input{x, y}},
		{"minimum", two((*Tensor).Minimum), []input{x, y}},
		{"matmul", two((*Tensor).Matmul), []input{x, in(5, -1, 1, 3, 4)}},
		{"batched matmul", two((*Tensor).Matmul), []input{in(6, -1, 1, 2, 2, 3), in(7, -1, 1, 3, 2)}},
		{"scalar ops", one(func(a *Tensor) *Tensor {
			return a.AddScalar(1).MulScalar(2).SubScalar(0.5).DivScalar(3).RSubScalar(1).PowScalar(2)
		}), []input{x}},
		{"rdiv rpow", one(func(a *Tensor) *Tensor { return a.RDivScalar(2).Add(a.RPowScalar(1.5)) }), []input{pos}},
		{"neg", one((*Tensor).Neg), []input{x}},
		{"exp", one((*Tensor).Exp), []input{x}},
		{"log", one((*Tensor).Log), []input{pos}},
		{"sqrt", one((*Tensor).Sqrt), []input{pos}},
		{"rsqrt", one((*Tensor).Rsqrt), []input{pos}},
		{"abs", one((*Tensor).Abs), []input{away}},
		{"sigmoid", one((*Tensor).Sigmoid), []input{x}},
		{"logsigmoid", one((*Tensor).LogSigmoid), []input{x}},
		{"tanh", one((*Tensor).Tanh), []input{x}},
		{"relu", one((*Tensor).Relu), []input{away}},
		{"gelu", one((*Tensor).Gelu), []input{x}},
		{"gelu tanh", one((*Tensor).GeluTanh), []input{x}},
		{"quick gelu", one((*Tensor).QuickGelu), []input{x}},
		{"leaky relu", one(func(a *Tensor) *Tensor { return a.LeakyRelu(0.01) }), []input{away}},
		{"clamp", one(func(a *Tensor) *Tensor { return a.Clamp(-1, 1) }), []input{away}},
		{"sin cos", one(func(a *Tensor) *Tensor { return a.Sin().Mul(a.Cos()) }), []input{x}},
		{"square erf", one(func(a *Tensor) *Tensor { return a.Square().Add(a.Erf()) }), []input{x}},
		{"where", two(func(a, b *Tensor) *Tensor { return Where(a.GtScalar(0), a.Square(), b) }), []input{away, y}},
		{"reshape permute", one(func(a *Tensor) *Tensor { return a.Reshape(3, 2).Permute(1, 0).Transpose(0, 1).Contiguous() }), []input{x}},
		{"narrow select", one(func(a *Tensor) *Tensor { return a.Narrow(1, 1, 2).Select(0, 1) }), []input{x}},
		{"index select", one(func(a *Tensor) *Tensor { return a.IndexSelect(1, FromSlice([]int64{2, 0, 2})) }), []input{x}},
		{"cat stack", two(func(a, b *Tensor) *Tensor { return Stack(0, Cat(1, a, b), Cat(1, b, a)) }), []input{x, y}},
		{"expand unsqueeze", one(func(a *Tensor) *Tensor { return a.Unsqueeze(0).Expand(3, 2, 3).Flatten(0, 1).Squeeze(1) }), []input{x}},
		{"clone to", one(func(a *Tensor) *Tensor { return a.Clone().ToDType(Float64) }), []input{x}},
		{"sum mean", one(func(a *Tensor) *Tensor {
			return Stack(0, a.Sum(), a.Mean(), a.SumDims(DropDims, 1).Select(0, 0), a.MeanDims(KeepDims, 0).Select(1, 2).Squeeze(0))
		}), []input{x}},
		{"max", one(func(a *Tensor) *Tensor {
			v, _ := a.MaxDim(1, DropDims)
			return Cat(0, v, a.Max().Unsqueeze(0), a.AmaxDims(DropDims, 0))
		}), []input{x}},
		{"min", one(func(a *Tensor) *Tensor {
			v, _ := a.MinDim(0, KeepDims)
			return Cat(0, v.Flatten(0, 1), a.Min().View(1))
		}), []input{x}},
		{"norm normalize", one(func(a *Tensor) *Tensor {
			return Cat(0, a.Norm(2, DropDims, 1), a.Normalize(1, 0).Flatten(0, 1))
		}), []input{x}},
		{"softmax", one(func(a *Tensor) *Tensor { return a.Softmax(1) }), []input{x}},
		{"log softmax", one(func(a *Tensor) *Tensor { return a.LogSoftmax(0) }), []input{x}},
		{"linear", func(xs []*Tensor) *Tensor { return Linear(xs[0], xs[1], xs[2]) },
			[]input{in(8, -1, 1, 2, 3), in(9, -1, 1, 4, 3), in(10, -1, 1, 4)}},
		{"conv2d", func(xs []*Tensor) *Tensor {
			return Conv2d(xs[0], xs[1], xs[2], Conv2dOptions{Stride: [2]int64{2, 1}, Padding: [2]int64{1, 0}})
		}, []input{in(11, -1, 1, 1, 2, 5, 4), in(12, -1, 1, 3, 2, 3, 2), in(13, -1, 1, 3)}},
		{"layer norm affine", func(xs []*Tensor) *Tensor { return LayerNorm(xs[0], []int64{3}, xs[1], xs[2], 1e-5) },
			[]input{x, in(14, 0.5, 1.5, 3), in(15, -1, 1, 3)}},
		{"layer norm plain", one(func(a *Tensor) *Tensor { return LayerNorm(a, []int64{3}, nil, nil, 1e-5) }), []input{x}},
		{"bilinear", one(func(a *Tensor) *Tensor { return Interpolate(a, 5, 4, Resize{Mode: Bilinear}) }), []input{in(16, -1, 1, 1, 2, 3, 3)}},
		{"bilinear corners", one(func(a *Tensor) *Tensor { return Interpolate(a, 5, 7, Resize{Mode: Bilinear, AlignCorners: true}) }), []input{in(17, -1, 1, 1, 1, 3, 3)}},
		{"bicubic antialias", one(func(a *Tensor) *Tensor { return Interpolate(a, 3, 4, Resize{Mode: Bicubic, Antialias: true}) }), []input{in(18, -1, 1, 1, 2, 6, 6)}},
		{"bicubic", one(func(a *Tensor) *Tensor { return Interpolate(a, 5, 7, Resize{Mode: Bicubic}) }), []input{in(34, -1, 1, 1, 1, 3, 4)}},
		{"bilinear antialias", one(func(a *Tensor) *Tensor { return Interpolate(a, 3, 2, Resize{Mode: Bilinear, Antialias: true}) }), []input{in(35, -1, 1, 1, 1, 7, 5)}},
		{"nearest", one(func(a *Tensor) *Tensor { return Interpolate(a, 4, 4, Resize{}) }), []input{in(19, -1, 1, 1, 1, 2, 2)}},
		{"grid sample reflection", two(func(a, th *Tensor) *Tensor {
			return GridSample(a, AffineGrid(th, [4]int64{1, 2, 3, 4}, Sampling{}), Sampling{Mode: Bilinear, Padding: PadReflection})
		}), []input{in(20, -1, 1, 1, 2, 4, 5), {[]float64{0.9, 0.15, 0.05, -0.1, 1.1, 0.07}, []int64{1, 2, 3}}}},
		{"attention", func(xs []*Tensor) *Tensor { return Attention(xs[0], xs[1], xs[2], nil, false, 0) },
			[]input{in(21, -1, 1, 2, 3, 4), in(22, -1, 1, 2, 5, 4), in(23, -1, 1, 2, 5, 2)}},
		{"attention causal", func(xs []*Tensor) *Tensor { return Attention(xs[0], xs[1], xs[2], nil, true, 0.3) },
			[]input{in(24, -1, 1, 1, 4, 3), in(25, -1, 1, 1, 4, 3), in(26, -1, 1, 1, 4, 2)}},
		{"attention mask", func(xs []*Tensor) *Tensor {
			return Attention(xs[0], xs[1], xs[2], FromSlice([]float64{0, -1, 0.5, 0, 2, -3}, 2, 3), false, 0)
		}, []input{in(27, -1, 1, 2, 4), in(28, -1, 1, 3, 4), in(29, -1, 1, 3, 2)}},
		{"attention causal and mask", func(xs []*Tensor) *Tensor {
			return Attention(xs[0], xs[1], xs[2], FromSlice([]bool{true, true, false, true, true, true, true, false, true}, 3, 3), true, 0)
		}, []input{in(31, -1, 1, 3, 4), in(32, -1, 1, 3, 4), in(33, -1, 1, 3, 2)}},
		{"embedding", one(func(w *Tensor) *Tensor { return Embedding(w, FromSlice([]int64{2, 0, 2, 1}, 2, 2)) }), []input{in(30, -1, 1, 3, 4)}},
	}
	for _, c := range cases {
		gradCheck(t, c.name, c.f, c.in...)
	}
}
