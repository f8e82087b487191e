package param

import (
	"math"
	"strings"
	"testing"

	"madclip/internal/torchtest"
	"madclip/torch"
)

// TestLinearCastsWeight: a float32 layer applied to a float64 input gives
// x·Wᵀ + b computed by hand, in the input's dtype.
func TestLinearCastsWeight(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		l := Linear{
			Weight: torch.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
			Bias:   torch.FromSlice([]float32{0.5, -1}, 2),
		}
		x := torch.FromSlice([]float64{1, 0, -1, 2, 1, 0}, 2, 3)
		y := l.Forward(x)
		if y.DType() != torch.Float64 {
			t.Errorf("dtype %v, want float64", y.DType())
		}
		want := []float64{1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 0.5, 8 + 5 - 1}
		for i, v := range torchtest.Values(t, y) {
			if math.Abs(v-want[i]) > 1e-12 {
				t.Errorf("y[%d] = %v, want %v", i, v, want[i])
			}
		}
		if l.Out() != 2 {
			t.Errorf("Out() = %d, want 2", l.Out())
		}
		// No bias.
		l.Bias = nil
		if got := torchtest.Values(t, l.Forward(x)); got[0] != -2 {
			t.Errorf("without bias y[0] = %v, want -2", got[0])
		}
		return nil
	})
}

// TestInitBuilder: every initialiser draws what it says, names nest with
// Sub, and asking twice for one name is an error.
func TestInitBuilder(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		g, err := torch.NewGenerator(3)
		if err != nil {
			return err
		}
		defer g.Free()
		b := NewInitBuilder(g, torch.Float32, torch.CPU)
		lin := NewLinear(b.Sub("a").Sub("fc"), 400, 50, Uniform(0.25), WithBias)
		c := b.Get("c", Const(2.5), 3)
		o := b.Get("o", Ones(), 2)
		n := b.Get("n", Normal(0.1), 200, 100)
		store, err := b.Finish()
		if err != nil {
			return err
		}
		defer store.Free()
		names := strings.Join(store.Names(), " ")
		for _, want := range []string{"a.fc.weight", "a.fc.bias", "c", "o", "n"} {
			if !strings.Contains(" "+names+" ", " "+want+" ") {
				t.Errorf("store has %q, missing %s", names, want)
			}
		}
		w := torchtest.Values(t, lin.Weight)
		lo, hi := 1.0, -1.0
		for _, v := range w {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo < -0.25 || hi >= 0.25 || lo > -0.24 || hi < 0.24 {
			t.Errorf("uniform(0.25) drew [%v, %v]", lo, hi)
		}
		for _, v := range torchtest.Values(t, lin.Bias) {
			if v != 0 {
				t.Fatalf("bias not zero: %v", v)
			}
		}
		for _, v := range torchtest.Values(t, c) {
			if v != 2.5 {
				t.Fatalf("const drew %v", v)
			}
		}
		if v := torchtest.Values(t, o); v[0] != 1 || v[1] != 1 {
			t.Errorf("ones drew %v", v)
		}
		var sum, sq float64
		nv := torchtest.Values(t, n)
		for _, v := range nv {
			sum += v
			sq += v * v
		}
		std := math.Sqrt(sq/float64(len(nv)) - math.Pow(sum/float64(len(nv)), 2))
		if math.Abs(std-0.1) > 0.005 {
			t.Errorf("normal(0.1) std %v", std)
		}

		twice := NewInitBuilder(g, torch.Float32, torch.CPU)
		twice.Get("x", Zeros(), 1)
		twice.Get("x", Zeros(), 1)
		if _, err := twice.Finish(); err == nil || !strings.Contains(err.Error(), "x requested twice") {
			t.Errorf("asking twice: %v", err)
		}
		return nil
	})
}

// TestLoadBuilderChecks: missing, unexpected and misshaped weights are all
// named in one error.
func TestLoadBuilderChecks(t *testing.T) {
	torchtest.Do(t, func(s *torch.Scope) error {
		src := map[string]*torch.Tensor{
			"l.weight": torch.Zeros(torch.Float32, torch.CPU, 4, 3).Persist(),
			"extra":    torch.Zeros(torch.Float32, torch.CPU, 1).Persist(),
		}
		b := NewLoadBuilder(src)
		NewLinear(b.Sub("l"), 4, 3, Zeros(), WithBias)
		_, err := b.Finish()
		if err == nil {
			t.Fatal("a mismatched load passed")
		}
		for _, want := range []string{"missing l.bias", "unexpected extra", "l.weight has shape [4 3], want [3 4]"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}

		ok := NewLoadBuilder(map[string]*torch.Tensor{"w": torch.Ones(torch.Float32, torch.CPU, 2).Persist()})
		w := ok.Get("w", Zeros(), 2)
		store, err := ok.Finish()
		if err != nil {
			return err
		}
		defer store.Free()
		if v := torchtest.Values(t, w); v[0] != 1 {
			t.Errorf("loaded weight replaced by its initialiser: %v", v)
		}
		return nil
	})
}

// TestShapeRecorder lists names and shapes and creates nothing.
func TestShapeRecorder(t *testing.T) {
	b := NewShapeRecorder()
	if w := NewLinear(b.Sub("p"), 8, 2, Normal(1), WithBias); w.Weight != nil {
		t.Error("recorder created a tensor")
	}
	got := b.Shapes()
	if len(got) != 2 || len(got["p.weight"]) != 2 || got["p.weight"][0] != 2 || got["p.weight"][1] != 8 || got["p.bias"][0] != 2 {
		t.Errorf("shapes %v", got)
	}
}
