// Package safetensors reads and writes the safetensors format (an 8-byte
// little-endian header length, a JSON header, then raw little-endian tensor
// data) in pure Go. The reader trusts nothing in a file: every header field
// is validated before any data is touched, so a corrupt or hostile file gives
// an error, never a panic or an out-of-range read.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/internal/regularfile"
)

// DType is a safetensors element type name.
type DType string

// The element types this package accepts.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the element size in bytes (0 for an unknown type).
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8, Bool:
		return 1
	}
	return 0
}

const (
	// MaxHeader bounds the JSON header (the reference implementation uses 100 MB).
	MaxHeader = 100 << 20
	maxDims   = 16
)

// Tensor describes one tensor of a file. Data holds its bytes in a parsed
// buffer (aliasing it) or a list to write; a file that Open reads leaves it
// nil: File.Read fetches the bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []byte
}

// NBytes is the size of the tensor's data.
func (t Tensor) NBytes() int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file: from a buffer (Parse), its tensors'
// Data alias it; from a path (Open), they are read on demand (Read) until
// Close.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor // sorted by name
	byName   map[string]int
	offsets  []int64 // where each tensor's data starts in the data section

	// The file Open read the header of, and where its data section starts.
	path      string
	fd        *os.File
	dataStart int64
}

// Get returns the tensor called name.
func (f *File) Get(name string) (Tensor, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Tensor{}, false
	}
	return f.Tensors[i], true
}

// Close closes the file Open read; Read fails after it.
func (f *File) Close() error {
	if f == nil || f.fd == nil {
		return nil
	}
	err := f.fd.Close()
	f.fd = nil
	return err
}

// Read returns the bytes of t, a tensor of f: its Data for a parsed buffer,
// else read from the file into buf (grown if need be; pass the last result
// to reuse it). The file is read, never mapped: one that another program
// truncates or rewrites meanwhile gives an error, not a bus error.
func (f *File) Read(t Tensor, buf []byte) ([]byte, error) {
	i, ok := f.byName[t.Name]
	if !ok {
		return nil, fmt.Errorf("no tensor %s", t.Name)
	}
	if f.fd == nil {
		if f.path != "" {
			return nil, fmt.Errorf("%s: read after Close", f.path)
		}
		return t.Data, nil
	}
	n := f.Tensors[i].NBytes()
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.fd.ReadAt(buf, f.dataStart+f.offsets[i]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: tensor %s: the file ends before its data (was it changed while being read?)", f.path, t.Name)
		}
		return nil, fmt.Errorf("%s: tensor %s: %w", f.path, t.Name, err)
	}
	return buf, nil
}

// Open reads and validates the header of the file at path; tensors' bytes
// are read by Read, until Close.
func Open(path string) (*File, error) {
	// A named pipe or device would block or never end: only regular files.
	fd, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := openHeader(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.path, f.fd = path, fd
	return f, nil
}

// ReadFile reads the whole file at path into memory and parses it, its
// tensors' Data filled: for small files, such as a checkpoint to edit.
func ReadFile(path string) (*File, error) {
	fd, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	buf, err := io.ReadAll(fd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func openHeader(fd *os.File) (*File, error) {
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	prefix := make([]byte, min(size, 16))
	if _, err := fd.ReadAt(prefix, 0); err != nil {
		return nil, err
	}
	n, err := headerLength(prefix, size)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, n)
	if _, err := fd.ReadAt(hdr, 8); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file ends inside its header (was it changed while being read?)")
		}
		return nil, err
	}
	f, err := parseHeader(hdr, size-8-n)
	if err != nil {
		return nil, err
	}
	f.dataStart = 8 + n
	return f, nil
}

type headerEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// mistaken says what a file users mistake for safetensors is: a safetensors
// header is JSON right after its 8-byte length, so only files without that
// are looked at.
func mistaken(buf []byte) error {
	if len(buf) > 8 && buf[8] == '{' { // a header follows its length
		return nil
	}
	switch {
	case bytes.HasPrefix(buf, []byte("PK\x03\x04")), bytes.HasPrefix(buf, []byte("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46")):
		return errors.New("a PyTorch file (torch.save, .pt/.pth), not safetensors: convert CLIP weights with 'madclip weights convert', the authors' checkpoints with 'madclip import authors'")
	}
	if what := authorship.Sniff(buf); what != "" {
		return errors.New(what + ", not a safetensors file")
	}
	return nil
}

// headerLength checks the header length that prefix (the file's first
// bytes) gives, in a file of size bytes.
func headerLength(prefix []byte, size int64) (int64, error) {
	if err := mistaken(prefix); err != nil {
		return 0, err
	}
	if size < 8 {
		return 0, fmt.Errorf("not a safetensors file: %d bytes, shorter than the 8-byte header length", size)
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	noJSON := len(prefix) > 8 && prefix[8] != '{'
	if (n > MaxHeader || n > uint64(size-8)) && noJSON || n > MaxHeader && len(prefix) <= 8 {
		// No length, and no JSON after it: text, or bytes of another kind.
		return 0, errors.New("not a safetensors file: no JSON header after its first 8 bytes (a text file, or another format?)")
	}
	if n > MaxHeader {
		return 0, fmt.Errorf("header length %d exceeds the %d-byte limit", n, MaxHeader)
	}
	if n > uint64(size-8) {
		return 0, fmt.Errorf("header length %d runs past the end of the %d-byte file", n, size)
	}
	return int64(n), nil
}

// Parse validates buf as a safetensors file. The returned File aliases buf.
func Parse(buf []byte) (*File, error) {
	n, err := headerLength(buf, int64(len(buf)))
	if err != nil {
		return nil, err
	}
	body := buf[8+n:]
	f, err := parseHeader(buf[8:8+n], int64(len(body)))
	if err != nil {
		return nil, err
	}
	for i, t := range f.Tensors {
		b, e := f.offsets[i], f.offsets[i]+t.NBytes()
		f.Tensors[i].Data = body[b:e:e]
	}
	return f, nil
}

// ReadStream reads safetensors from r (a pipe, say) in one pass, without
// holding the whole: after the header, given to header (which may refuse
// it), each tensor's bytes go to tensor in the order they lie in the data
// section, in a buffer reused for the next (tensor must copy what it
// keeps). The stream must end with the last tensor's bytes and hold at
// most limit bytes in all.
func ReadStream(r io.Reader, limit int64, header func(*File) error, tensor func(Tensor, []byte) error) error {
	var prefix [8]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return fmt.Errorf("reading the header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > MaxHeader || n > uint64(max(limit-8, 0)) {
		return fmt.Errorf("header length %d exceeds the limit", n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return fmt.Errorf("reading the header: %w", err)
	}
	f, err := parseHeader(hdr, -1)
	if err != nil {
		return err
	}
	order := make([]int, len(f.Tensors)) // by where their bytes lie
	var end int64
	for i, t := range f.Tensors {
		order[i] = i
		end = max(end, f.offsets[i]+t.NBytes())
	}
	if end > limit-8-int64(n) {
		return fmt.Errorf("its tensors take %d bytes, more than the %d-byte limit", end, limit)
	}
	if err := header(f); err != nil {
		return err
	}
	sort.Slice(order, func(a, b int) bool { return f.offsets[order[a]] < f.offsets[order[b]] })
	var at int64 // bytes of the data section read
	var buf []byte
	for _, i := range order {
		t := f.Tensors[i]
		nb := t.NBytes()
		if nb == 0 { // an empty tensor, wherever it says it lies (even among another's bytes)
			if err := tensor(t, nil); err != nil {
				return err
			}
			continue
		}
		if _, err := io.CopyN(io.Discard, r, f.offsets[i]-at); err != nil { // bytes no tensor holds
			return fmt.Errorf("reading before tensor %s: %w", t.Name, err)
		}
		if int64(cap(buf)) < nb {
			buf = make([]byte, nb)
		}
		if _, err := io.ReadFull(r, buf[:nb]); err != nil {
			return fmt.Errorf("reading tensor %s: %w", t.Name, err)
		}
		at = f.offsets[i] + nb
		if err := tensor(t, buf[:nb]); err != nil {
			return err
		}
	}
	if k, _ := r.Read(make([]byte, 1)); k > 0 {
		return errors.New("the stream goes on after the last tensor's data")
	}
	return nil
}

// parseHeader validates a header (the JSON object) against a data section
// of bodyLen bytes (-1 when not known yet: a stream's).
func parseHeader(hdr []byte, bodyLen int64) (*File, error) {
	if len(bytes.TrimSpace(hdr)) == 0 || bytes.TrimLeft(hdr, " \t\r\n")[0] != '{' {
		return nil, errors.New("header is not a JSON object")
	}
	raw, err := objectEntries(hdr)
	if err != nil {
		return nil, fmt.Errorf("bad header JSON: %w", err)
	}
	f := &File{byName: map[string]int{}}
	var spans []span
	for _, kv := range raw {
		if kv.key == "__metadata__" {
			if f.Metadata != nil {
				return nil, errors.New("header has __metadata__ twice")
			}
			m := map[string]string{}
			dec := json.NewDecoder(bytes.NewReader(kv.value))
			if err := dec.Decode(&m); err != nil {
				return nil, fmt.Errorf("__metadata__ must map strings to strings: %w", err)
			}
			f.Metadata = m
			continue
		}
		if _, dup := f.byName[kv.key]; dup {
			return nil, fmt.Errorf("tensor %q appears twice in the header", kv.key)
		}
		t, sp, err := parseEntry(kv, bodyLen)
		if err != nil {
			return nil, err
		}
		f.byName[kv.key] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
		spans = append(spans, sp)
	}
	if err := checkSpans(spans, bodyLen); err != nil {
		return nil, err
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	begins := make(map[string]int64, len(spans))
	for _, s := range spans {
		begins[s.name] = s.begin
	}
	f.offsets = make([]int64, len(f.Tensors))
	for i, t := range f.Tensors {
		f.byName[t.Name] = i
		f.offsets[i] = begins[t.Name]
	}
	return f, nil
}

// span is where a tensor's bytes lie in the data section.
type span struct {
	begin, end int64
	name       string
}

// parseEntry validates one tensor's header entry against a data section of
// bodyLen bytes.
func parseEntry(kv keyValue, bodyLen int64) (Tensor, span, error) {
	fail := func(format string, a ...any) (Tensor, span, error) {
		return Tensor{}, span{}, fmt.Errorf("tensor %q: "+format, append([]any{kv.key}, a...)...)
	}
	if kv.key == "" {
		return Tensor{}, span{}, errors.New("tensor with an empty name")
	}
	var e headerEntry
	dec := json.NewDecoder(bytes.NewReader(kv.value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return fail("bad entry: %w", err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return fail("entry needs dtype, shape and data_offsets")
	}
	dt := DType(*e.DType)
	if dt.Size() == 0 {
		return fail("unsupported dtype %q (want F32, F16, BF16, F64, I64, I32, U8 or BOOL)", *e.DType)
	}
	shape := *e.Shape
	if len(shape) > maxDims {
		return fail("%d dimensions (at most %d)", len(shape), maxDims)
	}
	numel := int64(1)
	for _, s := range shape {
		if s < 0 {
			return fail("negative dimension in shape %v", shape)
		}
		if s != 0 && numel > math.MaxInt64/int64(dt.Size())/s {
			return fail("shape %v is absurdly large", shape)
		}
		numel *= s
	}
	offs := *e.DataOffsets
	if len(offs) != 2 {
		return fail("data_offsets must be [begin, end]")
	}
	b, en := offs[0], offs[1]
	if b < 0 || en < b {
		return fail("bad data_offsets [%d, %d]", b, en)
	}
	if bodyLen >= 0 && en > bodyLen {
		return fail("data [%d, %d) runs past the %d data bytes (file truncated?)", b, en, bodyLen)
	}
	if want := numel * int64(dt.Size()); en-b != want {
		return fail("shape %v of %s needs %d bytes, data_offsets give %d", shape, dt, want, en-b)
	}
	return Tensor{Name: kv.key, DType: dt, Shape: shape}, span{b, en, kv.key}, nil
}

// checkSpans refuses tensors whose bytes overlap, and a data section that
// goes on after the last tensor's bytes, as the reference reader does:
// those bytes are no tensor's (a file appended to, or a header that lost
// entries).
func checkSpans(spans []span, bodyLen int64) error {
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	var end int64
	for i, s := range spans {
		if i > 0 && s.begin < spans[i-1].end {
			return fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, s.name)
		}
		end = max(end, s.end)
	}
	if bodyLen >= 0 && end != bodyLen {
		return fmt.Errorf("%d bytes after the last tensor's data: the file is longer than its header says (appended to, or edited)", bodyLen-end)
	}
	return nil
}

type keyValue struct {
	key   string
	value json.RawMessage
}

// objectEntries splits a JSON object into its members in order, rejecting
// duplicate keys and trailing data.
func objectEntries(b []byte) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	seen := map[string]bool{}
	var out []keyValue
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		if seen[k] {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, keyValue{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the header object")
	}
	return out, nil
}

// Write writes tensors (in name order) and metadata to w.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	for _, t := range tensors {
		if t.DType.Size() != 0 && !negative(t.Shape) && int64(len(t.Data)) != t.NBytes() {
			return fmt.Errorf("tensor %q: %d data bytes for shape %v of %s", t.Name, len(t.Data), t.Shape, t.DType)
		}
	}
	return WriteStream(w, tensors, metadata, func(i int) ([]byte, error) { return tensors[i].Data, nil })
}

// WriteStream is Write for tensors whose bytes are asked for one at a
// time, as each is written: specs give each tensor's name, dtype and
// shape (their Data is ignored), data(i) the bytes of specs[i]. Only one
// tensor's bytes need exist at once, so a file of gigabytes is written
// without a second copy of it in memory.
func WriteStream(w io.Writer, specs []Tensor, metadata map[string]string, data func(i int) ([]byte, error)) error {
	order := make([]int, len(specs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return specs[order[a]].Name < specs[order[b]].Name })
	var hdr strings.Builder
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var off int64
	for j, i := range order {
		t := specs[i]
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if j > 0 && specs[order[j-1]].Name == t.Name {
			return fmt.Errorf("tensor %q given twice", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		if negative(t.Shape) {
			return fmt.Errorf("tensor %q: negative dimension", t.Name)
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		sh, _ := json.Marshal(shape)
		fmt.Fprintf(&hdr, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, name, t.DType, sh, off, off+t.NBytes())
		off += t.NBytes()
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 { // keep the data 8-byte aligned
		hdr.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := io.WriteString(w, hdr.String()); err != nil {
		return err
	}
	for _, i := range order {
		b, err := data(i)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", specs[i].Name, err)
		}
		if t := specs[i]; int64(len(b)) != t.NBytes() {
			return fmt.Errorf("tensor %q: %d data bytes for shape %v of %s", t.Name, len(b), t.Shape, t.DType)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func negative(shape []int64) bool {
	for _, s := range shape {
		if s < 0 {
			return true
		}
	}
	return false
}

// WriteFile writes a safetensors file atomically (a reader sees the old file
// or the whole new one), with madclip's mark added to its metadata.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return Write(w, tensors, authorship.MarkMetadata(metadata))
	})
}

// WriteFileStream is WriteFile with WriteStream's one-tensor-at-a-time
// bytes.
func WriteFileStream(path string, specs []Tensor, metadata map[string]string, data func(i int) ([]byte, error)) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return WriteStream(w, specs, authorship.MarkMetadata(metadata), data)
	})
}
