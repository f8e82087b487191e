package torch

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCreation(t *testing.T) {
	run(t, func(s *Scope) error {
		z := Zeros(Float32, CPU, 2, 3)
		sameShape(t, "zeros", z.Shape(), []int64{2, 3})
		near(t, "zeros", f64(t, z), make([]float64, 6), 0)
		near(t, "ones", f64(t, Ones(Float64, CPU, 2)), []float64{1, 1}, 0)
		near(t, "full", f64(t, Full(2.5, BFloat16, CPU, 3)), []float64{2.5, 2.5, 2.5}, 0)
		near(t, "arange", f64(t, Arange(0, 1, 0.25, Float32, CPU)), []float64{0, 0.25, 0.5, 0.75}, 0)
		if d := Empty(Int32, CPU, 4).DType(); d != Int32 {
			t.Errorf("empty dtype %v", d)
		}
		sc := Zeros(Float32, CPU)
		if sc.Dim() != 0 || sc.Numel() != 1 {
			t.Errorf("scalar: dim %d numel %d", sc.Dim(), sc.Numel())
		}
		wantErr(t, s, Zeros(Float32, CPU, 2, -1), "negative")
		return nil
	})
}

func TestSeededRandom(t *testing.T) {
	run(t, func(s *Scope) error {
		if err := ManualSeed(7); err != nil {
			return err
		}
		a := f64(t, Randn(nil, Float32, CPU, 100))
		if err := ManualSeed(7); err != nil {
			return err
		}
		b := f64(t, Randn(nil, Float32, CPU, 100))
		near(t, "same seed", a, b, 0)

		g1, _ := NewGenerator(42)
		defer g1.Free()
		g2, _ := NewGenerator(42)
		defer g2.Free()
		x := f64(t, Randn(g1, Float64, CPU, 1000))
		_ = Randn(nil, Float64, CPU, 10) // the default generator does not disturb g2
		y := f64(t, Randn(g2, Float64, CPU, 1000))
		near(t, "generator", x, y, 0)
		var mean, sq float64
		for _, v := range x {
			mean += v
			sq += v * v
		}
		mean /= 1000
		std := math.Sqrt(sq/1000 - mean*mean)
		if math.Abs(mean) > 0.15 || math.Abs(std-1) > 0.1 {
			t.Errorf("randn: mean %.3f std %.3f", mean, std)
		}
		u := f64(t, Rand(g1, Float32, CPU, 1000))
		for _, v := range u {
			if v < 0 || v >= 1 {
				t.Fatalf("rand value %v outside [0,1)", v)
			}
		}
		return nil
	})
}

func TestDTypeRoundTrip(t *testing.T) {
	run(t, func(s *Scope) error {
		f := []float32{1.5, -2, 3.25}
		got, err := ToSlice[float32](FromSlice(f))
		if err != nil || got[0] != 1.5 || got[1] != -2 || got[2] != 3.25 {
			t.Errorf("f32: %v %v", got, err)
		}
		i := []int64{1 << 40, -3}
		gi, _ := ToSlice[int64](FromSlice(i))
		if gi[0] != 1<<40 || gi[1] != -3 {
			t.Errorf("i64: %v", gi)
		}
		i32, _ := ToSlice[int32](FromSlice([]int32{7, -8}))
		if i32[0] != 7 || i32[1] != -8 {
			t.Errorf("i32: %v", i32)
		}
		u8, _ := ToSlice[uint8](FromSlice([]uint8{0, 255}))
		if u8[1] != 255 {
			t.Errorf("u8: %v", u8)
		}
		bs, _ := ToSlice[bool](FromSlice([]bool{true, false, true}))
		if !bs[0] || bs[1] || !bs[2] {
			t.Errorf("bool: %v", bs)
		}
		// Conversions through every dtype keep small integers exactly.
		src := FromSlice([]float64{0, 1, 2, 3}, 2, 2)
		for _, dt := range []DType{Float32, Float64, Float16, BFloat16, Int64, Int32, Uint8} {
			c := src.ToDType(dt)
			if c.DType() != dt {
				t.Errorf("%v: dtype %v", dt, c.DType())
			}
			near(t, dt.String(), f64(t, c), []float64{0, 1, 2, 3}, 0)
		}
		// f16 and bf16 round as IEEE half and bfloat16 do.
		near(t, "f16", f64(t, FromSlice([]float64{1.0 / 3}).ToDType(Float16)), []float64{0.333251953125}, 0)
		near(t, "bf16", f64(t, FromSlice([]float64{1.0 / 3}).ToDType(BFloat16)), []float64{0.333984375}, 0)
		raw, err := FromSlice([]float32{1}).Bytes(Float32)
		if err != nil || len(raw) != 4 || raw[3] != 0x3f || raw[2] != 0x80 {
			t.Errorf("bytes: %x %v", raw, err)
		}
		wantErr(t, s, FromSlice([]float32{1, 2, 3}, 2, 2), "bytes")
		v, err := FromSlice([]float64{4.5}).Item()
		if err != nil || v != 4.5 {
			t.Errorf("item: %v %v", v, err)
		}
		if _, err := FromSlice([]float64{1, 2}).Item(); err == nil {
			t.Error("item of two elements accepted")
		}
		return nil
	})
}

func TestParse(t *testing.T) {
	for s, want := range map[string]DType{"f32": Float32, "bfloat16": BFloat16, "fp16": Float16, "i64": Int64, "bool": Bool} {
		if d, err := ParseDType(s); err != nil || d != want {
			t.Errorf("ParseDType(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDType("f8"); err == nil {
		t.Error("f8 accepted")
	}
	for s, want := range map[string]Device{"cpu": CPU, "cuda": CUDA(0), "cuda:3": CUDA(3)} {
		if d, err := ParseDevice(s); err != nil || d != want {
			t.Errorf("ParseDevice(%q) = %v, %v", s, d, err)
		}
	}
	for _, s := range []string{"gpu", "cuda:-1", "cuda:x", ""} {
		if _, err := ParseDevice(s); err == nil {
			t.Errorf("ParseDevice(%q) accepted", s)
		}
	}
	if CUDA(1).String() != "cuda:1" || CPU.String() != "cpu" {
		t.Error("device names")
	}
	if Float16.Size() != 2 || Int64.Size() != 8 || Bool.Size() != 1 {
		t.Error("dtype sizes")
	}
}

func TestShapeOps(t *testing.T) {
	run(t, func(s *Scope) error {
		x := Arange(0, 6, 1, Float64, CPU).Reshape(2, 3) // [[0 1 2] [3 4 5]]
		near(t, "transpose", f64(t, x.Transpose(0, 1).Contiguous()), []float64{0, 3, 1, 4, 2, 5}, 0)
		near(t, "permute", f64(t, x.Permute(1, 0)), []float64{0, 3, 1, 4, 2, 5}, 0)
		near(t, "narrow", f64(t, x.Narrow(1, 1, 2)), []float64{1, 2, 4, 5}, 0)
		near(t, "select", f64(t, x.Select(0, 1)), []float64{3, 4, 5}, 0)
		near(t, "index_select", f64(t, x.IndexSelect(1, FromSlice([]int64{2, 0}))), []float64{2, 0, 5, 3}, 0)
		near(t, "cat", f64(t, Cat(0, x, x.MulScalar(-1)).Select(0, 2)), []float64{0, -1, -2}, 0)
		st := Stack(1, x, x)
		sameShape(t, "stack", st.Shape(), []int64{2, 2, 3})
		near(t, "stack", f64(t, st.Select(0, 1).Select(0, 1)), []float64{3, 4, 5}, 0)
		sameShape(t, "unsqueeze", x.Unsqueeze(0).Shape(), []int64{1, 2, 3})
		sameShape(t, "squeeze", x.Unsqueeze(0).Squeeze(0).Shape(), []int64{2, 3})
		sameShape(t, "flatten", x.Unsqueeze(2).Flatten(0, 1).Shape(), []int64{6, 1})
		sameShape(t, "view -1", x.View(-1).Shape(), []int64{6})
		near(t, "expand", f64(t, FromSlice([]float64{1, 2}, 2, 1).Expand(2, 3)), []float64{1, 1, 1, 2, 2, 2}, 0)
		if err := x.Transpose(0, 1).View(6).Err(); err == nil {
			t.Error("view of a non-contiguous tensor accepted")
		}
		if err := x.Reshape(4, 2).Err(); err == nil {
			t.Error("reshape 6 → 8 accepted")
		}
		if err := x.Select(0, 5).Err(); err == nil {
			t.Error("out-of-range select accepted")
		}
		if err := Cat(0).Err(); err == nil {
			t.Error("empty cat accepted")
		}
		s.err = nil // the expected failures above were recorded on the scope
		return nil
	})
}

func TestElementwiseValues(t *testing.T) {
	run(t, func(s *Scope) error {
		a := FromSlice([]float64{-2, -0.5, 0.5, 2})
		b := FromSlice([]float64{1, 2, 3, 4})
		near(t, "add", f64(t, a.Add(b)), []float64{-1, 1.5, 3.5, 6}, 1e-15)
		near(t, "sub", f64(t, a.Sub(b)), []float64{-3, -2.5, -2.5, -2}, 1e-15)
		near(t, "mul", f64(t, a.Mul(b)), []float64{-2, -1, 1.5, 8}, 1e-15)
		near(t, "div", f64(t, a.Div(b)), []float64{-2, -0.25, 0.5 / 3, 0.5}, 1e-15)
		near(t, "pow", f64(t, b.Pow(FromSlice([]float64{2}))), []float64{1, 4, 9, 16}, 1e-15)
		near(t, "rsub", f64(t, a.RSubScalar(1)), []float64{3, 1.5, 0.5, -1}, 1e-15)
		near(t, "rdiv", f64(t, b.RDivScalar(12)), []float64{12, 6, 4, 3}, 1e-15)
		near(t, "rpow", f64(t, b.RPowScalar(2)), []float64{2, 4, 8, 16}, 1e-15)
		near(t, "broadcast", f64(t, a.Reshape(4, 1).Add(b.Reshape(1, 4)).Select(0, 0)), []float64{-1, 0, 1, 2}, 1e-15)
		exp := make([]float64, 4)
		sig := make([]float64, 4)
		lsig := make([]float64, 4)
		gelu := make([]float64, 4)
		for i, v := range []float64{-2, -0.5, 0.5, 2} {
			exp[i] = math.Exp(v)
			sig[i] = 1 / (1 + math.Exp(-v))
			lsig[i] = -math.Log1p(math.Exp(-v))
			gelu[i] = v * 0.5 * (1 + math.Erf(v/math.Sqrt2))
		}
		near(t, "exp", f64(t, a.Exp()), exp, 1e-14)
		near(t, "sigmoid", f64(t, a.Sigmoid()), sig, 1e-14)
		near(t, "logsigmoid", f64(t, a.LogSigmoid()), lsig, 1e-14)
		near(t, "gelu", f64(t, a.Gelu()), gelu, 1e-14)
		near(t, "leaky_relu", f64(t, a.LeakyRelu(0.01)), []float64{-0.02, -0.005, 0.5, 2}, 1e-15)
		near(t, "clamp", f64(t, a.Clamp(-1, 1)), []float64{-1, -0.5, 0.5, 1}, 0)
		near(t, "clamp_min", f64(t, a.ClampMin(0)), []float64{0, 0, 0.5, 2}, 0)
		near(t, "where", f64(t, Where(a.GtScalar(0), a, b)), []float64{1, 2, 0.5, 2}, 0)
		near(t, "lt", f64(t, a.Lt(b.MulScalar(0.25))), []float64{1, 1, 1, 0}, 0)
		near(t, "maximum", f64(t, a.Maximum(FromSlice([]float64{0}))), []float64{0, 0, 0.5, 2}, 0)
		near(t, "quick_gelu", f64(t, FromSlice([]float64{1}).QuickGelu()), []float64{1 / (1 + math.Exp(-1.702))}, 1e-14)
		m := FromSlice([]float64{1, 2, 3, 4}, 2, 2)
		near(t, "matmul", f64(t, m.Matmul(m)), []float64{7, 10, 15, 22}, 1e-15)
		if err := a.Add(FromSlice([]float64{1, 2, 3})).Err(); err == nil || !strings.Contains(err.Error(), "size") {
			t.Errorf("broadcast mismatch: %v", err)
		}
		s.err = nil
		return nil
	})
}

func TestReductions(t *testing.T) {
	run(t, func(s *Scope) error {
		x := FromSlice([]float64{1, 5, 3, 4, 2, 6}, 2, 3)
		near(t, "sum", f64(t, x.Sum()), []float64{21}, 0)
		near(t, "mean", f64(t, x.Mean()), []float64{3.5}, 1e-15)
		near(t, "sum dim", f64(t, x.SumDims(DropDims, 1)), []float64{9, 12}, 0)
		sameShape(t, "keepdim", x.MeanDims(KeepDims, 0).Shape(), []int64{1, 3})
		near(t, "max", f64(t, x.Max()), []float64{6}, 0)
		near(t, "min", f64(t, x.Min()), []float64{1}, 0)
		near(t, "amax", f64(t, x.AmaxDims(DropDims, 0)), []float64{4, 5, 6}, 0)
		v, i := x.MaxDim(1, DropDims)
		near(t, "max_dim values", f64(t, v), []float64{5, 6}, 0)
		near(t, "max_dim indices", f64(t, i), []float64{1, 2}, 0)
		mv, mi := x.MinDim(0, DropDims)
		near(t, "min_dim", f64(t, mv), []float64{1, 2, 3}, 0)
		near(t, "min_dim idx", f64(t, mi), []float64{0, 1, 0}, 0)
		near(t, "argmax", f64(t, x.Argmax(0, DropDims)), []float64{1, 0, 1}, 0)
		near(t, "norm", f64(t, FromSlice([]float64{3, 4}).Norm(2, DropDims)), []float64{5}, 1e-15)
		near(t, "norm dim", f64(t, FromSlice([]float64{3, 4, 6, 8}, 2, 2).Norm(2, DropDims, 1)), []float64{5, 10}, 1e-15)
		near(t, "normalize", f64(t, FromSlice([]float64{3, 4, 0, 0}, 2, 2).Normalize(1, 0)), []float64{0.6, 0.8, 0, 0}, 1e-15)
		near(t, "prod", f64(t, x.Prod()), []float64{720}, 0)
		if err := x.SumDims(DropDims).Err(); err == nil {
			t.Error("SumDims without dims accepted")
		}
		s.err = nil
		return nil
	})
}

func TestScopes(t *testing.T) {
	err := Do(func() error {
		base := LiveTensors()
		var kept, inner *Tensor
		outer := NewScope()
		_ = Zeros(Float32, CPU, 2)
		func() {
			s := NewScope()
			defer s.Close()
			inner = Ones(Float32, CPU, 2)
			kept = s.Keep(inner.MulScalar(3))
			if LiveTensors() != base+3 {
				t.Errorf("live %d, want %d", LiveTensors()-base, 3)
			}
		}()
		if LiveTensors() != base+2 {
			t.Errorf("after inner scope: live %d, want 2", LiveTensors()-base)
		}
		if err := inner.Add(inner).Err(); !errors.Is(err, ErrFreed) {
			t.Errorf("use after free: %v", err)
		}
		near(t, "kept", f64(t, kept), []float64{3, 3}, 0)
		// A scope left open inside another is closed with it.
		_ = NewScope()
		_ = Zeros(Float32, CPU, 5)
		outer.Close()
		if LiveTensors() != base {
			t.Errorf("after outer scope: %d live", LiveTensors()-base)
		}
		// Unscoped tensors live until Free; Persist takes one out of its scope.
		var p *Tensor
		_ = Scoped(func(s *Scope) error {
			p = Zeros(Float32, CPU, 1).Persist()
			return nil
		})
		if LiveTensors() != base+1 {
			t.Errorf("persisted tensor freed")
		}
		p.Free()
		p.Free()
		if LiveTensors() != base {
			t.Errorf("after Free: %d live", LiveTensors()-base)
		}
		// The scope reports the first error even when the tensor is dropped.
		err := Scoped(func(s *Scope) error {
			_ = Zeros(Float32, CPU, 2).Matmul(Zeros(Float32, CPU, 3))
			return nil
		})
		if err == nil {
			t.Error("dropped error not reported by the scope")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStore(t *testing.T) {
	err := Do(func() error {
		base := LiveTensors()
		st := NewStore()
		_ = Scoped(func(s *Scope) error {
			if err := st.Add("w", Zeros(Float32, CPU, 2)); err != nil {
				t.Fatal(err)
			}
			if err := st.Add("w", Zeros(Float32, CPU, 2)); err == nil {
				t.Error("duplicate name accepted")
			}
			return st.Add("b", Ones(Float32, CPU, 1))
		})
		if st.Len() != 2 || st.Names()[0] != "w" || LiveTensors() != base+2 {
			t.Errorf("store: %v live %d", st.Names(), LiveTensors()-base)
		}
		_ = Scoped(func(s *Scope) error {
			if err := st.Add("bad", Zeros(Float32, CPU, 1).Matmul(Zeros(Float32, CPU, 2))); err == nil {
				t.Error("failed tensor accepted")
			}
			return nil
		})
		st.Free()
		if LiveTensors() != base {
			t.Errorf("store free left %d", LiveTensors()-base)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An allocation tried with TryEmpty that fails (here far beyond any
// machine's memory) returns its error and leaves the scope's work going
// on; one that succeeds is an ordinary tensor of the scope.
func TestTryEmpty(t *testing.T) {
	err := Do(func() error {
		return Scoped(func(s *Scope) error {
			if _, err := TryEmpty(Float32, CPU, 1<<40, 1<<20); !errors.Is(err, ErrOOM) {
				t.Errorf("an impossible allocation: %v, want an out-of-memory error", err)
			}
			if _, err := TryEmpty(Float32, CPU, -1); err == nil {
				t.Error("a negative dimension allocated")
			}
			if s.Err() != nil {
				t.Errorf("the failed try was recorded on the scope: %v", s.Err())
			}
			x, err := TryEmpty(Float16, CPU, 3, 2)
			if err != nil {
				return err
			}
			if in, err := x.Info(); err != nil || in.DType != Float16 || len(in.Shape) != 2 || in.Shape[0] != 3 {
				t.Errorf("allocated %+v, %v", in, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
