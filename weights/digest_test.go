package weights

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
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
// shape, is remembered while the file is unchanged, and finds files by
// content.
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
	// Remembered: with the file unchanged, the cache answers (a digest
	// planted in it comes back, so the file was not read).
	cache := readDigestCache()
	k, _ := keyOf(p1)
	if cache[k] != d1 {
		t.Fatalf("the cache does not hold %s's digest", p1)
	}
	cache[k] = "planted"
	writeDigestCache(cache)
	if d, _ := Digest(p1); d != "planted" {
		t.Errorf("an unchanged file was hashed again (%s)", d)
	}
	// Bytes changed in place with the size and modification time put back
	// (touch -r): the change time gives it away, and it is hashed again.
	st, _ := os.Stat(p1)
	raw, _ := os.ReadFile(p1)
	raw[len(raw)-1] ^= 0xff
	os.WriteFile(p1, raw, 0o644)
	os.Chtimes(p1, st.ModTime(), st.ModTime())
	if d, _ := Digest(p1); d == "planted" || d == d1 {
		t.Errorf("weights edited behind a restored modification time kept a remembered digest (%s)", d)
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

// TestDigestConcurrent: runs hashing different files at the same time all
// leave their digest in the cache (none overwrites another's entry).
func TestDigestConcurrent(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	const n = 24
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("w%02d.safetensors", i))
		writeST(t, paths[i], []safetensors.Tensor{{Name: "w", DType: "U8", Shape: []int64{1}, Data: []byte{byte(i)}}}, nil)
	}
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Digest(p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cache := readDigestCache()
	for _, p := range paths {
		k, _ := keyOf(p)
		if _, ok := cache[k]; !ok {
			t.Errorf("%s's digest was lost from the cache", filepath.Base(p))
		}
	}
}

// A cache path that is not our own regular file is neither waited on nor
// written through: a named pipe there does not hang, a link there does not
// get its target replaced; the digest is still computed.
func TestDigestCacheNotRegular(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "w.safetensors")
	writeST(t, w, []safetensors.Tensor{{Name: "w", DType: "U8", Shape: []int64{1}, Data: []byte{1}}}, nil)
	precious := filepath.Join(dir, "precious.txt")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	for _, c := range []struct {
		name string
		make func(p string) error
	}{
		{"a named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"a link to a user's file", func(p string) error { return os.Symlink(precious, p) }},
	} {
		cache := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", cache)
		p := filepath.Join(cache, "madclip", "digests.json")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := c.make(p); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := Digest(w); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s as the cache: %v", c.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s as the cache: Digest hangs", c.name)
		}
		if b, _ := os.ReadFile(precious); string(b) != "keep me" {
			t.Errorf("%s as the cache: the linked file now holds %q", c.name, b)
		}
	}
}

// Weights holding NaN or infinity in any float dtype get no digest: the
// error names the file and the tensor. The largest finite values pass.
func TestDigestRefusesNonFinite(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	for _, c := range []struct {
		dtype string
		data  []byte
		bad   bool
	}{
		{"F16", le16(0x7bff), false}, {"F16", le16(0x7c00), true}, {"F16", le16(0xfc00), true}, {"F16", le16(0x7e00), true},
		{"BF16", le16(0x7f7f), false}, {"BF16", le16(0x7fc0), true}, {"BF16", le16(0xff80), true},
		{"F32", binary.LittleEndian.AppendUint32(nil, math.Float32bits(math.MaxFloat32)), false},
		{"F32", binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN()))), true},
		{"F64", binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))), true},
		{"F64", binary.LittleEndian.AppendUint64(nil, math.Float64bits(-math.MaxFloat64)), false},
		{"U8", []byte{0xff}, false},
	} {
		p := filepath.Join(dir, c.dtype+hex.EncodeToString(c.data)+".safetensors")
		writeST(t, p, []safetensors.Tensor{{Name: "w.weight", DType: safetensors.DType(c.dtype), Shape: []int64{1}, Data: c.data}}, nil)
		_, err := Digest(p)
		want := "CLIP weights " + p + ": tensor w.weight holds NaN or infinite values: the file is corrupt"
		if c.bad && (err == nil || err.Error() != want) || !c.bad && err != nil {
			t.Errorf("%s %x: %v", c.dtype, c.data, err)
		}
	}
}
