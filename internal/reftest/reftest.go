// Package reftest holds what tests share: the Python reference interpreter
// (Debian's python3 with python3-torch, python3-pil, ...) and value
// comparisons with tolerances.
package reftest

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"madclip/model/clip/bpe"
)

// Interpreter is Debian's Python, which has the reference packages, or the
// one $MADCLIP_TEST_PYTHON names (the GPU machine's PyTorch lives in a
// virtual environment of its own).
func Interpreter() string {
	if py := os.Getenv("MADCLIP_TEST_PYTHON"); py != "" {
		return py
	}
	return "/usr/bin/python3"
}

// InCI reports whether the tests run under CI, where every reference must
// be present: a missing one fails the test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Python returns the interpreter after checking that it imports modules;
// otherwise it skips the test (fails it under CI).
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	py := Interpreter()
	if err := exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).Run(); err != nil {
		if InCI() {
			t.Fatalf("the Python reference (%s) is needed under CI: %v", strings.Join(modules, ", "), err)
		}
		t.Skipf("no Python reference (%s): %v", strings.Join(modules, ", "), err)
	}
	return py
}

// RunJSON runs a reference script as `py script FILE`, FILE holding in as
// JSON, and decodes the JSON the script prints into out. The script's
// stderr goes to the test's.
func RunJSON(t testing.TB, py, script string, in, out any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.json")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, path)
	cmd.Stderr = os.Stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if err := json.Unmarshal(got, out); err != nil {
		t.Fatalf("%s printed %.200q: %v", script, got, err)
	}
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

// Tokenizer is CLIP's tokenizer with the vocab built into madclip.
func Tokenizer(t testing.TB) *bpe.Tokenizer {
	t.Helper()
	tk, err := bpe.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tk
}
