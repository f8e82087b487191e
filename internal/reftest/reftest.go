// Package reftest holds what tests share: the Python reference interpreter
// (Debian's python3 with python3-torch, python3-pil, ...) and value
// comparisons with tolerances.
package reftest

import (
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"madclip/model/clip/bpe"
)

// Interpreter is Debian's Python, which has the reference packages.
const Interpreter = "/usr/bin/python3"

// InCI reports whether the tests run under CI, where every reference must
// be present: a missing one fails the test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Python returns the interpreter after checking that it imports modules;
// otherwise it skips the test (fails it under CI).
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	if err := exec.Command(Interpreter, "-c", "import "+strings.Join(modules, ", ")).Run(); err != nil {
		if InCI() {
			t.Fatalf("the Python reference (%s) is needed under CI: %v", strings.Join(modules, ", "), err)
		}
		t.Skipf("no Python reference (%s): %v", strings.Join(modules, ", "), err)
	}
	return Interpreter
}

// Near fails the test unless got and want agree element by element within
// tol·(1+|want|).
func Near(t testing.TB, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("%s[%d]: got %.9g, want %.9g (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

// Cosine is the cosine similarity of two vectors.
func Cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

// Vocab returns CLIP's BPE vocab for tests: $MADCLIP_TEST_VOCAB when set
// (the GPU script carries a copy), else shared, the path of the shared copy
// beside the repository as seen from the test's package. It skips the test
// when neither exists (fails it under CI).
func Vocab(t testing.TB, shared string) string {
	t.Helper()
	p := os.Getenv("MADCLIP_TEST_VOCAB")
	if p == "" {
		p = shared
	}
	if _, err := os.Stat(p); err != nil {
		if InCI() {
			t.Fatalf("the shared CLIP vocab is needed under CI: %v", err)
		}
		t.Skipf("no CLIP vocab: %v", err)
	}
	return p
}

var tokenizers sync.Map // path → *bpe.Tokenizer

// Tokenizer loads CLIP's tokenizer from the vocab Vocab finds, once per path.
func Tokenizer(t testing.TB, shared string) *bpe.Tokenizer {
	t.Helper()
	path := Vocab(t, shared)
	if tk, ok := tokenizers.Load(path); ok {
		return tk.(*bpe.Tokenizer)
	}
	tk, err := bpe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tokenizers.Store(path, tk)
	return tk
}
