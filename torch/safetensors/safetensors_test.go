package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() []Tensor {
	return []Tensor{
		{Name: "f32", DType: F32, Shape: []int64{2, 2}, Data: bytes.Repeat([]byte{1, 2, 3, 4}, 4)},
		{Name: "f16", DType: F16, Shape: []int64{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "bf16", DType: BF16, Shape: []int64{1}, Data: []byte{9, 9}},
		{Name: "f64", DType: F64, Shape: []int64{1}, Data: make([]byte, 8)},
		{Name: "i64", DType: I64, Shape: []int64{2}, Data: bytes.Repeat([]byte{7}, 16)},
		{Name: "i32", DType: I32, Shape: []int64{}, Data: []byte{1, 0, 0, 0}},
		{Name: "u8", DType: U8, Shape: []int64{5}, Data: []byte{0, 1, 2, 3, 255}},
		{Name: "bool", DType: Bool, Shape: []int64{2}, Data: []byte{1, 0}},
		{Name: "empty", DType: F32, Shape: []int64{0, 3}, Data: nil},
	}
}

// A file cut short after its header was read (another program rewriting
// it) gives an error naming the file and the tensor, never a bus error;
// after Close nothing is read.
func TestReadTruncatedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	big := Tensor{Name: "w", DType: F32, Shape: []int64{1024, 1024}, Data: make([]byte, 4<<20)}
	for i := range big.Data {
		big.Data[i] = byte(i)
	}
	if err := WriteFile(path, []Tensor{big}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, _ := f.Get("w")
	buf, err := f.Read(w, nil)
	if err != nil || !bytes.Equal(buf, big.Data) {
		t.Fatalf("read: %v", err)
	}
	if err := os.Truncate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(w, buf); err == nil || !strings.Contains(err.Error(), path+": tensor w: the file ends before its data") {
		t.Errorf("read of a truncated file: %v", err)
	}
	f.Close()
	if _, err := f.Read(w, buf); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("read after Close: %v", err)
	}
}

// Bytes after the last tensor's data are refused, as the reference reader
// refuses them: something was appended, or the header lost an entry.
func TestTrailingBytes(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sample(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(buf.Bytes()); err != nil {
		t.Fatalf("as written: %v", err)
	}
	if _, err := Parse(append(buf.Bytes(), 0, 0, 0)); err == nil || !strings.Contains(err.Error(), "3 bytes after the last tensor's data") {
		t.Errorf("3 bytes appended: %v", err)
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	meta := map[string]string{"format": "pt", "note": `quotes " and ünïcode`}
	if err := WriteFile(path, sample(), meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The metadata given, and madclip's mark.
	if f.Metadata["note"] != meta["note"] || f.Metadata["written_by"] != "madclip" || len(f.Metadata) != 3 {
		t.Errorf("metadata %v", f.Metadata)
	}
	if len(meta) != 2 {
		t.Errorf("the caller's metadata map was changed: %v", meta)
	}
	for _, want := range sample() {
		got, ok := f.Get(want.Name)
		if !ok {
			t.Fatalf("%s missing", want.Name)
		}
		data, err := f.Read(got, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != want.DType || len(got.Shape) != len(want.Shape) || !bytes.Equal(data, want.Data) || got.NBytes() != int64(len(want.Data)) {
			t.Errorf("%s: got %v %v %x", want.Name, got.DType, got.Shape, data)
		}
	}
	if len(f.Tensors) != len(sample()) {
		t.Errorf("%d tensors", len(f.Tensors))
	}
	for i := 1; i < len(f.Tensors); i++ {
		if f.Tensors[i-1].Name >= f.Tensors[i].Name {
			t.Error("tensors not sorted by name")
		}
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("data not 8-byte aligned: header %d", n)
	}
}

// file builds a safetensors file from a header string and a data size.
func file(header string, data int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(make([]byte, data))
	return b.Bytes()
}

func TestRejectsBadFiles(t *testing.T) {
	huge := make([]byte, 9)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	huge[8] = '{' // a header that would start, but is far too long
	cases := map[string]struct {
		buf  []byte
		want string
	}{
		"too short":        {[]byte{1, 2, 3}, "shorter than"},
		"8 bytes of JSON":  {[]byte("{\"a\":1}\n"), "a JSON document, not a safetensors file"},
		"short JSON":       {[]byte("{}"), "a JSON document, not a safetensors file"},
		"a PNG's start":    {[]byte("\x89PNG"), "a PNG image, not a safetensors file"},
		"header past end":  {append(append([]byte{}, file(`{}`, 0)[:8]...), '{'), "past the end"},
		"absurd header":    {huge, "exceeds"},
		"text":             {[]byte("hello, this is a text file\nand not weights\n"), "not a safetensors file: no JSON header after its first 8 bytes"},
		"random bytes":     {[]byte{0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x42, 0x99, 0x01}, "not a safetensors file: no JSON header"},
		"8 bytes of text":  {[]byte("garbage\n"), "not a safetensors file: no JSON header after its first 8 bytes"},
		"not json":         {file(`{"a":`, 0), "bad header JSON"},
		"not object":       {file(`[1,2]`, 0), "not a JSON object"},
		"trailing":         {file(`{} {}`, 0), "after the header"},
		"unknown dtype":    {file(`{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, 1), "unsupported dtype"},
		"missing field":    {file(`{"a":{"dtype":"F32","shape":[1]}}`, 4), "needs dtype"},
		"extra field":      {file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "bad entry"},
		"negative dim":     {file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "negative"},
		"fractional dim":   {file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), "bad entry"},
		"size mismatch":    {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "needs 8 bytes"},
		"offset past end":  {file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "truncated"},
		"reversed offsets": {file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), "bad data_offsets"},
		"three offsets":    {file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 4), "[begin, end]"},
		"overlap": {file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4),
			"overlap"},
		"duplicate": {file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2),
			"twice"},
		"absurd shape":  {file(`{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8), "absurdly large"},
		"too many dims": {file(`{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, 1), "dimensions"},
		"bad metadata":  {file(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
		"empty name":    {file(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), "empty name"},
	}
	for name, c := range cases {
		_, err := Parse(c.buf)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want error containing %q, got %v", name, c.want, err)
		}
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "trunc.safetensors")
	good := filepath.Join(dir, "good.safetensors")
	if err := WriteFile(good, sample(), nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	os.WriteFile(trunc, raw[:len(raw)-3], 0o644)
	for _, p := range []string{trunc, filepath.Join(dir, "missing.safetensors"), dir} {
		_, err := Open(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s): %v", p, err)
		}
	}
}

func TestWriteRejectsBadTensors(t *testing.T) {
	for name, ts := range map[string][]Tensor{
		"size":     {{Name: "a", DType: F32, Shape: []int64{2}, Data: make([]byte, 4)}},
		"dtype":    {{Name: "a", DType: "F8", Shape: []int64{1}, Data: make([]byte, 1)}},
		"dup":      {{Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int64{1}, Data: []byte{1}}},
		"reserved": {{Name: "__metadata__", DType: U8, Shape: []int64{1}, Data: []byte{1}}},
	} {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		if err := WriteFile(path, ts, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: partial file left behind", name)
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 0 {
			t.Errorf("%s: temporary file left behind: %v", name, entries)
		}
	}
}

// FuzzParse: no input makes Parse panic or hand out data outside the buffer.
func FuzzParse(f *testing.F) {
	var b bytes.Buffer
	Write(&b, sample(), map[string]string{"k": "v"})
	f.Add(b.Bytes())
	f.Add(file(`{}`, 0))
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := Parse(buf)
		// Streamed, the same bytes are accepted or refused alike, and
		// give the same tensors.
		streamed := map[string][]byte{}
		serr := ReadStream(bytes.NewReader(buf), int64(len(buf)), func(*File) error { return nil }, func(ts Tensor, data []byte) error {
			streamed[ts.Name] = bytes.Clone(data)
			return nil
		})
		if (err == nil) != (serr == nil) {
			t.Fatalf("Parse: %v; ReadStream: %v", err, serr)
		}
		if err != nil {
			return
		}
		for _, ts := range file.Tensors {
			if !bytes.Equal(streamed[ts.Name], ts.Data) {
				t.Fatalf("%s streamed as %v, parsed as %v", ts.Name, streamed[ts.Name], ts.Data)
			}
		}
		for _, ts := range file.Tensors {
			n := int64(ts.DType.Size())
			for _, s := range ts.Shape {
				n *= s
			}
			if int64(len(ts.Data)) != n {
				t.Fatalf("%s: %d bytes for shape %v", ts.Name, len(ts.Data), ts.Shape)
			}
		}
		// What parses must survive a write/parse round trip.
		var out bytes.Buffer
		if err := Write(&out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("write of a parsed file: %v", err)
		}
		if _, err := Parse(out.Bytes()); err != nil {
			t.Fatalf("reparse: %v", err)
		}
	})
}

// WriteStream writes the bytes Write writes, asking for each tensor's data
// once, in the file's order; data of the wrong length or an error from data
// fails the write, and WriteFileStream then leaves no file.
func TestWriteStream(t *testing.T) {
	specs := []Tensor{
		{Name: "b", DType: F32, Shape: []int64{2}, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Name: "a", DType: U8, Shape: []int64{3}, Data: []byte{9, 10, 11}},
		{Name: "c", DType: F16, Shape: []int64{}, Data: []byte{12, 13}},
	}
	var want, got bytes.Buffer
	if err := Write(&want, specs, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	var asked []string
	bare := make([]Tensor, len(specs))
	for i, s := range specs {
		bare[i] = Tensor{Name: s.Name, DType: s.DType, Shape: s.Shape}
	}
	err := WriteStream(&got, bare, map[string]string{"k": "v"}, func(i int) ([]byte, error) {
		asked = append(asked, specs[i].Name)
		return specs[i].Data, nil
	})
	if err != nil || !bytes.Equal(got.Bytes(), want.Bytes()) || strings.Join(asked, ",") != "a,b,c" {
		t.Fatalf("WriteStream: %v, asked %v, same bytes %v", err, asked, bytes.Equal(got.Bytes(), want.Bytes()))
	}
	dir := t.TempDir()
	for name, data := range map[string]func(int) ([]byte, error){
		"short.safetensors":  func(i int) ([]byte, error) { return specs[i].Data[:1], nil },
		"failed.safetensors": func(i int) ([]byte, error) { return nil, os.ErrPermission },
	} {
		path := filepath.Join(dir, name)
		err := WriteFileStream(path, bare, nil, data)
		if err == nil || !strings.Contains(err.Error(), `tensor "a"`) {
			t.Errorf("%s: %v", name, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: a failed write left %v", name, entries)
		}
	}
}

// ReadStream reads what Parse reads, in one pass: every tensor's bytes in
// the data section's order, gaps between tensors skipped; a stream cut
// short, going on after its last tensor, over its limit, or refused by
// the header callback fails, and no tensor is handed over after a refusal.
func TestReadStream(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample(), map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	whole := b.Bytes()
	parsed, err := Parse(whole)
	if err != nil {
		t.Fatal(err)
	}
	read := func(buf []byte, limit int64, header func(*File) error) (map[string][]byte, []string, error) {
		got, order := map[string][]byte{}, []string{}
		err := ReadStream(bytes.NewReader(buf), limit, header, func(ts Tensor, data []byte) error {
			got[ts.Name], order = bytes.Clone(data), append(order, ts.Name)
			return nil
		})
		return got, order, err
	}
	var meta map[string]string
	got, order, err := read(whole, int64(len(whole)), func(f *File) error { meta = f.Metadata; return nil })
	if err != nil || meta["k"] != "v" || len(got) != len(parsed.Tensors) {
		t.Fatalf("ReadStream: %v, metadata %v, %d of %d tensors", err, meta, len(got), len(parsed.Tensors))
	}
	for _, ts := range parsed.Tensors {
		if !bytes.Equal(got[ts.Name], ts.Data) {
			t.Errorf("tensor %s: %v, want %v", ts.Name, got[ts.Name], ts.Data)
		}
	}
	for i := 1; i < len(order); i++ { // in the order of their bytes
		a, _ := parsed.Get(order[i-1])
		c, _ := parsed.Get(order[i])
		if parsed.offsets[parsed.byName[a.Name]] > parsed.offsets[parsed.byName[c.Name]] {
			t.Errorf("handed over %v, not in the data's order", order)
		}
	}
	// Gaps: bytes between two tensors belong to none and are skipped.
	gap := file(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}}`, 6)
	copy(gap[len(gap)-6:], []byte{1, 2, 0, 0, 0, 3})
	if got, _, err := read(gap, 1<<20, func(*File) error { return nil }); err != nil || !bytes.Equal(got["a"], []byte{1, 2}) || !bytes.Equal(got["b"], []byte{3}) {
		t.Errorf("a gap between tensors: %v, %v", got, err)
	}
	refused := errors.New("refused")
	for name, c := range map[string]struct {
		buf    []byte
		limit  int64
		header func(*File) error
		want   string
	}{
		"cut short":       {whole[:len(whole)-3], 1 << 20, nil, "unexpected EOF"},
		"no header":       {whole[:5], 1 << 20, nil, "reading the header length"},
		"header cut":      {whole[:20], 1 << 20, nil, "reading the header"},
		"goes on":         {append(bytes.Clone(whole), 0), 1 << 20, nil, "goes on after the last tensor"},
		"over the limit":  {whole, int64(len(whole)) - 1, nil, "more than the"},
		"header too long": {whole, 10, nil, "exceeds the limit"},
		"not JSON":        {file(`[1]`, 0), 1 << 20, nil, "not a JSON object"},
		"refused":         {whole, 1 << 20, func(*File) error { return refused }, "refused"},
	} {
		header := c.header
		if header == nil {
			header = func(*File) error { return nil }
		}
		got, _, err := read(c.buf, c.limit, header)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
		if name == "refused" && len(got) != 0 {
			t.Errorf("refused header: %d tensors handed over", len(got))
		}
	}
}
