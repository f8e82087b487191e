package torch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	run(t, func(s *Scope) error {
		src := map[string]*Tensor{}
		vals := []float64{0, 1, 2, 3, 4, 5}
		for _, dt := range []DType{Float32, Float64, Float16, BFloat16, Int64, Int32, Uint8} {
			src[dt.String()] = FromSlice(vals, 2, 3).ToDType(dt)
		}
		src["bool"] = FromSlice([]bool{true, false})
		if err := SaveSafetensors(path, src, map[string]string{"k": "v"}); err != nil {
			return err
		}
		got, meta, err := LoadSafetensors(path, CPU, SameDType)
		if err != nil {
			return err
		}
		if meta["k"] != "v" || len(got) != len(src) {
			t.Errorf("meta %v, %d tensors", meta, len(got))
		}
		for name, want := range src {
			g := got[name]
			if g.DType() != want.DType() {
				t.Errorf("%s: dtype %v", name, g.DType())
			}
			sameShape(t, name, g.Shape(), want.Shape())
			near(t, name, f64(t, g), f64(t, want), 0)
		}
		// Floats convert on load, integers keep their type.
		conv, _, err := LoadSafetensors(path, CPU, Float32)
		if err != nil {
			return err
		}
		if conv["f16"].DType() != Float32 || conv["i64"].DType() != Int64 {
			t.Errorf("conversion: %v %v", conv["f16"].DType(), conv["i64"].DType())
		}
		return nil
	})
}

func TestSafetensorsLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	run(t, func(s *Scope) error {
		return SaveSafetensors(good, map[string]*Tensor{"a": Zeros(Float32, CPU, 100)}, nil)
	})
	raw, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, raw[:len(raw)-10], 0o644)
	notST := filepath.Join(dir, "text.safetensors")
	os.WriteFile(notST, []byte("hello, this is not a weights file"), 0o644)
	run(t, func(s *Scope) error {
		before := LiveTensors()
		for _, p := range []string{trunc, notST, filepath.Join(dir, "missing.safetensors")} {
			_, _, err := LoadSafetensors(p, CPU, SameDType)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("%s: %v", p, err)
			}
		}
		if LiveTensors() != before {
			t.Error("failed load left tensors behind")
		}
		return nil
	})
	// An unwritable destination fails cleanly.
	run(t, func(s *Scope) error {
		err := SaveSafetensors(filepath.Join(dir, "no", "such", "dir.safetensors"), map[string]*Tensor{"a": Zeros(Float32, CPU, 1)}, nil)
		if err == nil {
			t.Error("save into a missing folder succeeded")
		}
		return nil
	})
}
