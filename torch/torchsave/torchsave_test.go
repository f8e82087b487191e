package torchsave

import (
	"archive/zip"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/internal/reftest"
	"madclip/torch/safetensors"
)

func makeFiles(t *testing.T) string {
	t.Helper()
	py := reftest.Python(t, "torch")
	dir := t.TempDir()
	if out, err := exec.Command(py, filepath.Join("testdata", "make_files.py"), dir).CombinedOutput(); err != nil {
		t.Fatalf("make_files.py: %v\n%s", err, out)
	}
	return dir
}

func byName(t *testing.T, path string) map[string]Tensor {
	t.Helper()
	ts, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Tensor{}
	for _, x := range ts {
		m[x.Name] = x
	}
	return m
}

func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestStateDicts(t *testing.T) {
	dir := makeFiles(t)
	m := byName(t, filepath.Join(dir, "state.pth"))
	want := []string{"adapters.0.bias", "adapters.0.weight", "other.0.weight"}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if w := m["adapters.0.weight"]; w.DType != safetensors.F32 || !slices.Equal(w.Shape, []int64{2, 3}) || len(w.Data) != 24 {
		t.Errorf("adapters.0.weight %v %v %d bytes", w.DType, w.Shape, len(w.Data))
	}
	if !IsTorchSave(filepath.Join(dir, "state.pth")) {
		t.Error("IsTorchSave")
	}
}

// A tensor under an integer key is named with the key in brackets, not
// dropped unseen.
func TestIntegerKeys(t *testing.T) {
	dir := makeFiles(t)
	m := byName(t, filepath.Join(dir, "intkeys.pth"))
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{"[7]", "a.b", "a[5]"}; !slices.Equal(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
}

func TestKinds(t *testing.T) {
	dir := makeFiles(t)
	for _, file := range []string{"kinds.pth", "proto4.pth"} {
		m := byName(t, filepath.Join(dir, file))
		if file == "proto4.pth" {
			if w := f32s(m["w"].Data); len(w) != 24 || w[23] != 23 {
				t.Errorf("proto 4: %v", w)
			}
			continue
		}
		check := func(name string, shape []int64, want []float32) {
			t.Helper()
			x := m[name]
			if !slices.Equal(x.Shape, shape) || !slices.Equal(f32s(x.Data), want) {
				t.Errorf("%s: shape %v values %v, want %v %v", name, x.Shape, f32s(x.Data), shape, want)
			}
		}
		check("t", []int64{6, 4}, []float32{0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22, 5, 11, 17, 23})
		check("slice", []int64{2, 3}, []float32{8, 9, 10, 14, 15, 16})
		check("row", []int64{6}, []float32{12, 13, 14, 15, 16, 17})
		check("param", []int64{2}, []float32{1, 1})
		check("scalar", []int64{}, []float32{2.5})
		check("empty", []int64{0, 3}, nil)
		if x := m["f16"]; x.DType != safetensors.F16 || !slices.Equal(x.Data, []byte{0x00, 0x3e, 0x80, 0xc0}) {
			t.Errorf("f16 %v % x", x.DType, x.Data)
		}
		if x := m["bf16"]; x.DType != safetensors.BF16 || !slices.Equal(x.Data, []byte{0x40, 0x40, 0x00, 0x3f}) {
			t.Errorf("bf16 %v % x", x.DType, x.Data)
		}
		if x := m["i64"]; x.DType != safetensors.I64 || int64(binary.LittleEndian.Uint64(x.Data)) != -7 || binary.LittleEndian.Uint64(x.Data[8:]) != 1<<40 {
			t.Errorf("i64 % x", x.Data)
		}
		if x := m["f64"]; x.DType != safetensors.F64 || math.Float64frombits(binary.LittleEndian.Uint64(x.Data)) != 1e-300 {
			t.Errorf("f64 % x", x.Data)
		}
		if m["i32"].DType != safetensors.I32 || m["u8"].Data[0] != 255 || !slices.Equal(m["b"].Data, []byte{1, 0}) {
			t.Errorf("i32 %v u8 %v bool %v", m["i32"], m["u8"], m["b"])
		}
		if _, ok := m["meta.epoch"]; ok {
			t.Error("a non-tensor value read as a tensor")
		}
	}
}

// A pickle that names os.system is refused, and nothing runs; a dict that
// holds itself, an expanded tensor, a truncated file and a non-zip are
// errors.
func TestHostile(t *testing.T) {
	dir := makeFiles(t)
	if _, err := Read(filepath.Join(dir, "evil.pth")); err == nil || !strings.Contains(err.Error(), "refusing the global") {
		t.Errorf("evil: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the pickle ran a command")
	}
	if _, err := Read(filepath.Join(dir, "cycle.pth")); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("cycle: %v", err)
	}
	// Copied out, one stored float expanded to 2^40 would take 4 TiB.
	if _, err := Read(filepath.Join(dir, "expanded.pth")); err == nil || !strings.Contains(err.Error(), "repeats the 1 elements of its storage") {
		t.Errorf("expanded: %v", err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "kinds.pth"))
	trunc := filepath.Join(dir, "trunc.pth")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	text := filepath.Join(dir, "text.pth")
	os.WriteFile(text, []byte("hello"), 0o644)
	for _, p := range []string{trunc, text, filepath.Join(dir, "missing.pth")} {
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", p, err)
		}
	}
	// Views reaching past their storage: state.pth with every storage
	// record cut to two bytes.
	bad := filepath.Join(dir, "short.pth")
	zr, _ := zip.OpenReader(filepath.Join(dir, "state.pth"))
	f, _ := os.Create(bad)
	zw := zip.NewWriter(f)
	for _, e := range zr.File {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Store})
		if strings.Contains(e.Name, "/data/") {
			w.Write([]byte{1, 2})
			continue
		}
		r, _ := e.Open()
		b, _ := io.ReadAll(r)
		r.Close()
		w.Write(b)
	}
	zw.Close()
	f.Close()
	zr.Close()
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), "storage") {
		t.Errorf("short storage: %v", err)
	}
	// A storage record larger than its storage, or compressed (torch.save
	// stores them): refused before it is read.
	rewrite := func(name string, method uint16, extra int) string {
		out := filepath.Join(dir, name)
		zr, _ := zip.OpenReader(filepath.Join(dir, "state.pth"))
		defer zr.Close()
		f, _ := os.Create(out)
		defer f.Close()
		zw := zip.NewWriter(f)
		defer zw.Close()
		for _, e := range zr.File {
			r, _ := e.Open()
			b, _ := io.ReadAll(r)
			r.Close()
			m := zip.Store
			if strings.Contains(e.Name, "/data/") {
				b, m = append(b, make([]byte, extra)...), method
			}
			if strings.HasSuffix(e.Name, "data.pkl") && name == "deflated-pickle.pth" {
				m = zip.Deflate
			}
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: m})
			w.Write(b)
		}
		return out
	}
	if _, err := Read(rewrite("long.pth", zip.Store, 1<<20)); err == nil || !strings.Contains(err.Error(), "bytes, its 6 elements take 24") {
		t.Errorf("a storage record larger than its storage: %v", err)
	}
	if _, err := Read(rewrite("deflated.pth", zip.Deflate, 0)); err == nil || !strings.Contains(err.Error(), "is compressed") {
		t.Errorf("a compressed storage record: %v", err)
	}
	if _, err := Read(rewrite("deflated-pickle.pth", zip.Store, 0)); err == nil || !strings.Contains(err.Error(), "data.pkl is compressed") {
		t.Errorf("a compressed pickle: %v", err)
	}
	if _, err := Read(rewrite("stored.pth", zip.Store, 0)); err != nil {
		t.Errorf("the same file rewritten as it was: %v", err)
	}
}

// A small pickle that would build millions of values is refused once it
// has built the limit's worth.
func TestPickleBomb(t *testing.T) {
	bomb := []byte(strings.Repeat("}", 1000) + ".")
	if _, err := unpickleAtMost(bomb, 100); err == nil || !strings.Contains(err.Error(), "more than 100 values built") {
		t.Errorf("bomb: %v", err)
	}
	memo := []byte("}" + strings.Repeat("q\x00", 1000) + ".") // one dict memoised over and over
	if _, err := unpickleAtMost(memo, 100); err == nil || !strings.Contains(err.Error(), "more than 100 values built") {
		t.Errorf("memo bomb: %v", err)
	}
	marks := []byte(strings.Repeat("(", 1000) + ".") // marks cost memory too
	if _, err := unpickleAtMost(marks, 100); err == nil || !strings.Contains(err.Error(), "more than 100 values built") {
		t.Errorf("mark bomb: %v", err)
	}
	if v, err := unpickleAtMost([]byte("}."), 100); err != nil || v == nil {
		t.Errorf("one dict: %v %v", v, err)
	}
}

// A view whose offset, strides or storage size would overflow int64 is
// refused by name, never indexed.
func TestViewOverflow(t *testing.T) {
	storage := make([]byte, 4*6)
	for _, c := range []struct {
		r    tensorRef
		want string
	}{
		{tensorRef{key: "0", dtype: safetensors.F32, numel: 6, offset: math.MaxInt64, size: []int64{1}, stride: []int64{1}}, "reaches beyond its storage"},
		{tensorRef{key: "0", dtype: safetensors.F32, numel: 6, offset: 0, size: []int64{3, 2}, stride: []int64{3 << 61, 1}}, "reaches beyond its storage"},
		{tensorRef{key: "0", dtype: safetensors.U8, numel: 24, offset: 0, size: []int64{2}, stride: []int64{1<<62 + 1}}, "reaches beyond its storage"},
		{tensorRef{key: "0", dtype: safetensors.F32, numel: 1<<62 + 1, offset: 0, size: []int64{2}, stride: []int64{1}}, "claims 4611686018427387905 elements"},
		{tensorRef{key: "0", dtype: safetensors.F32, numel: 6, offset: 5, size: []int64{2}, stride: []int64{1}}, "reaches beyond its storage"},
	} {
		if _, err := c.r.materialise("a", storage); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.r, err, c.want)
		}
	}
	ok := tensorRef{key: "0", dtype: safetensors.F32, numel: 6, offset: 4, size: []int64{2}, stride: []int64{1}}
	if x, err := ok.materialise("a", storage); err != nil || len(x.Data) != 8 {
		t.Errorf("the last two elements: %v", err)
	}
}

// Arbitrary bytes as data.pkl, read for tensors or scanned for storages:
// an error or a result, never a panic.
func FuzzUnpickle(f *testing.F) {
	f.Add([]byte("\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."))
	f.Add([]byte("(ccollections\nOrderedDict\nq\x00)Rq\x01."))
	f.Add([]byte("c__torch__\nModule\n)\x81}b."))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := unpickle(data)
		if err == nil {
			flatten(v, "", 0, func(string, *tensorRef) error { return nil })
		}
		storageScan(data)
	})
}

// A storage scan reads past the globals a tensor reader refuses (a
// TorchScript module's classes), calling nothing, and lists the storages.
func TestStorageScan(t *testing.T) {
	// A module object, its state a dict holding one float tensor of 6
	// elements in storage "0".
	pkl := "\x80\x02c__torch__\nModule\nq\x00)\x81}(X\x01\x00\x00\x00w" +
		"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage" +
		"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89" +
		"ccollections\nOrderedDict\n)RtRub."
	if _, err := unpickle([]byte(pkl)); err == nil || !strings.Contains(err.Error(), "refusing the global __torch__.Module") {
		t.Errorf("the tensor reader took a module: %v", err)
	}
	refs, err := storageScan([]byte(pkl))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].key != "0" || refs[0].numel != 6 || refs[0].dtype != safetensors.F32 {
		t.Errorf("storages %+v", refs)
	}
	if _, err := storageScan([]byte("\x80\x02R.")); err == nil {
		t.Error("a REDUCE on an empty stack scanned")
	}
}

// A storage record whose bytes no longer match its CRC-32 (a bit flipped on
// disk) is refused, naming the record.
func TestCorruptRecord(t *testing.T) {
	dir := makeFiles(t)
	src := filepath.Join(dir, "state.pth")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	var rec *zip.File
	for _, f := range zr.File {
		if strings.Contains(f.Name, "/data/") && f.UncompressedSize64 > 0 {
			rec = f
			break
		}
	}
	if rec == nil {
		t.Fatal("state.pth has no storage record")
	}
	off, err := rec.DataOffset()
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw[off] ^= 0x01
	bad := filepath.Join(dir, "flipped.pth")
	if err := os.WriteFile(bad, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), rec.Name) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a flipped bit in %s: %v", rec.Name, err)
	}
}
