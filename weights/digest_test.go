package weights

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"madclip/torch/safetensors"
)

func writeST(t *testing.T, path string, ts []safetensors.Tensor, meta map[string]string) {
	t.Helper()
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		t.Fatal(err)
	}
}

// TestDigest: the digest depends on the tensors only (not the order they
// are listed in nor the metadata), changes with any byte, name, dtype or
// shape, is remembered by path, size and time, and finds files by content.
func TestDigest(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvDir, t.TempDir())
	dir := t.TempDir()
	a := safetensors.Tensor{Name: "a", DType: "F32", Shape: []int64{2}, Data: []byte{1, 0, 0, 0, 2, 0, 0, 0}}
	b := safetensors.Tensor{Name: "b", DType: "F16", Shape: []int64{1, 1}, Data: []byte{7, 8}}
	p1, p2 := filepath.Join(dir, "one.safetensors"), filepath.Join(dir, "two.safetensors")
	writeST(t, p1, []safetensors.Tensor{a, b}, map[string]string{"format": "pt"})
	writeST(t, p2, []safetensors.Tensor{b, a}, map[string]string{"source": "elsewhere", "x": "y"})
	d1, err := Digest(p1)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := Digest(p2); d1 != d2 || len(d1) != 64 {
		t.Errorf("same tensors, digests %s and %s", d1, d2)
	}
	variants := map[string]safetensors.Tensor{
		"byte":  {Name: "b", DType: "F16", Shape: []int64{1, 1}, Data: []byte{7, 9}},
		"name":  {Name: "c", DType: "F16", Shape: []int64{1, 1}, Data: []byte{7, 8}},
		"dtype": {Name: "b", DType: "BF16", Shape: []int64{1, 1}, Data: []byte{7, 8}},
		"shape": {Name: "b", DType: "F16", Shape: []int64{1}, Data: []byte{7, 8}},
	}
	for what, v := range variants {
		p := filepath.Join(dir, what+".safetensors")
		writeST(t, p, []safetensors.Tensor{a, v}, nil)
		if d, _ := Digest(p); d == d1 {
			t.Errorf("a different %s gives the same digest", what)
		}
	}
	// Remembered: the file's bytes changed behind our back, size and time
	// kept, and the remembered digest comes back without reading them.
	st, _ := os.Stat(p1)
	raw, _ := os.ReadFile(p1)
	raw[len(raw)-1] ^= 0xff
	os.WriteFile(p1, raw, 0o644)
	os.Chtimes(p1, st.ModTime(), st.ModTime())
	if d, _ := Digest(p1); d != d1 {
		t.Error("the digest was recomputed though path, size and time are unchanged")
	}
	// A new time invalidates it.
	os.Chtimes(p1, st.ModTime().Add(time.Second), st.ModTime().Add(time.Second))
	if d, _ := Digest(p1); d == d1 {
		t.Error("a changed file kept its remembered digest")
	}
	// Found by content, in a folder given or a weights folder.
	moved := filepath.Join(os.Getenv(EnvDir), "renamed.safetensors")
	writeST(t, moved, []safetensors.Tensor{a, b}, nil)
	if got, err := FindDigest(d1); err != nil || got != moved {
		t.Errorf("FindDigest: %s, %v; want %s", got, err, moved)
	}
	if _, err := FindDigest(string(make([]byte, 64))); err == nil {
		t.Error("an unknown digest was found")
	}
}
