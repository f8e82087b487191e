package torch

import (
	"os"
	"strings"
	"testing"

	"madclip/internal/reftest"
)

// run executes fn on the compute thread inside a scope and checks that the
// scope left no tensor behind.
func run(t *testing.T, fn func(s *Scope) error) {
	t.Helper()
	var before, after int64
	err := Do(func() error {
		before = LiveTensors()
		err := Scoped(fn)
		after = LiveTensors()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("leaked %d tensors", after-before)
	}
}

func f64(t *testing.T, x *Tensor) []float64 {
	t.Helper()
	v, err := x.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	reftest.Near(t, what, got, want, tol)
}

func sameShape(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: shape %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: shape %v, want %v", what, got, want)
		}
	}
}

// lcg gives deterministic pseudo-random values in [lo, hi) for test inputs.
func lcg(seed uint64, n int, lo, hi float64) []float64 {
	out := make([]float64, n)
	s := seed*6364136223846793005 + 1442695040888963407
	for i := range out {
		s = s*6364136223846793005 + 1442695040888963407
		out[i] = lo + (hi-lo)*float64(s>>11)/float64(1<<53)
	}
	return out
}

// expectCUDA is set by scripts/gpu_check.sh: CUDA must then be available.
func expectCUDA() bool { return os.Getenv("MADCLIP_EXPECT_CUDA") == "1" }

// wantErr checks that x failed with a message containing substr and clears
// the error from the scope, since the failure was expected.
func wantErr(t *testing.T, s *Scope, x *Tensor, substr string) {
	t.Helper()
	err := x.Err()
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Errorf("want an error containing %q, got %v", substr, err)
	}
	s.err = nil
}
