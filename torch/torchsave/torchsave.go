// Package torchsave reads the tensors of a torch.save file (PyTorch's zip
// format: a pickle, archive/data.pkl, and one record per storage) without
// running any of its pickle: a small pickle machine rebuilds only dicts,
// lists, tuples, scalars and tensors, and refuses every other global. Nested
// dicts (state dicts, dicts of state dicts) flatten to dotted names.
//
// It reads what libtorch's own unpickler does not: the OrderedDicts with
// their _metadata that Module.state_dict() returns.
package torchsave

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"madclip/torch/safetensors"
)

// Tensor is one tensor of the file, its values contiguous and little-endian.
// Data may share its bytes with the other tensors viewing the same
// storage: it is for reading only.
type Tensor struct {
	Name  string
	DType safetensors.DType
	Shape []int64
	Data  []byte
}

// Limits on hostile files.
const (
	maxRecord = 16 << 30 // one storage
	maxPickle = 256 << 20
	maxDims   = 16
)

// IsTorchSave reports whether path is a zip whose records are torch.save's
// (a data.pkl without TorchScript's constants.pkl).
func IsTorchSave(path string) bool {
	z, err := zip.OpenReader(path)
	if err != nil {
		return false
	}
	defer z.Close()
	_, _, err = findPickle(&z.Reader)
	return err == nil
}

func findPickle(z *zip.Reader) (*zip.File, string, error) {
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/constants.pkl") {
			return nil, "", errors.New("a TorchScript archive, not a torch.save file")
		}
	}
	pkl, prefix := topPickle(z)
	if pkl == nil {
		return nil, "", errors.New("no data.pkl: not a torch.save file")
	}
	return pkl, prefix, nil
}

// topPickle is the archive's top data.pkl ("NAME/data.pkl", the first) and
// the prefix of its records ("NAME/"), or nil.
func topPickle(z *zip.Reader) (*zip.File, string) {
	for _, f := range z.File {
		if strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1 {
			return f, strings.TrimSuffix(f.Name, "data.pkl")
		}
	}
	return nil, ""
}

// storageRecord is the record holding storage r of the archive (files by
// name, prefix the top pickle's), checked to hold exactly its size bytes:
// torch.save and TorchScript write them so, and a record cut short would
// be read past its end.
func storageRecord(files map[string]*zip.File, prefix string, r *tensorRef, size int64) (*zip.File, error) {
	f, ok := files[prefix+"data/"+r.key]
	switch {
	case !ok:
		return nil, fmt.Errorf("no storage record data/%s", r.key)
	case f.UncompressedSize64 != uint64(size):
		return nil, fmt.Errorf("storage record data/%s holds %d bytes, its %d elements take %d", r.key, f.UncompressedSize64, r.numel, size)
	}
	return f, nil
}

// CheckStorageRecords checks a zip archive PyTorch wrote (a TorchScript
// module or a torch.save file) for what libtorch's loader does not: that
// every storage its top data.pkl names has a stored record of exactly its
// bytes. libtorch reads a storage's elements from its record whatever the
// record's size, so a record cut short (its checksum made anew) would load
// as memory beyond it. Nothing in the pickle is called.
func CheckStorageRecords(z *zip.Reader) error {
	pkl, prefix := topPickle(z)
	if pkl == nil {
		return errors.New("no data.pkl")
	}
	files := map[string]*zip.File{}
	for _, f := range z.File {
		files[f.Name] = f
	}
	data, err := readRecord(pkl, maxPickle)
	if err != nil {
		return err
	}
	refs, err := storageScan(data)
	if err != nil {
		return fmt.Errorf("data.pkl: %w", err)
	}
	for _, r := range refs {
		size, err := r.storageBytes()
		if err != nil {
			return fmt.Errorf("storage %s: %w", r.key, err)
		}
		if _, err := storageRecord(files, prefix, r, size); err != nil {
			return err
		}
	}
	return nil
}

// Read returns every tensor of a torch.save file, sorted by name.
func Read(path string) ([]Tensor, error) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a torch.save file (PyTorch 1.6 or newer writes a zip): %w", path, err)
	}
	defer z.Close()
	ts, err := read(&z.Reader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

func read(z *zip.Reader) ([]Tensor, error) {
	pkl, prefix, err := findPickle(z)
	if err != nil {
		return nil, err
	}
	files := map[string]*zip.File{}
	for _, f := range z.File {
		files[f.Name] = f
	}
	if f, ok := files[prefix+"byteorder"]; ok {
		b, err := readRecord(f, 16)
		if err != nil {
			return nil, err
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("byte order %q: only little-endian files are read", b)
		}
	}
	if pkl.Method != zip.Store { // torch.save stores every record as it is
		return nil, fmt.Errorf("record %s is compressed; torch.save stores records as they are", pkl.Name)
	}
	data, err := readRecord(pkl, maxPickle)
	if err != nil {
		return nil, fmt.Errorf("a damaged archive: %w", err)
	}
	root, err := unpickle(data)
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	storages := map[string][]byte{}
	var out []Tensor
	named := map[string]bool{}
	err = flatten(root, "", 0, func(name string, r *tensorRef) error {
		if named[name] { // {"a.b": x} beside {"a": {"b": y}}: which one is meant?
			return fmt.Errorf("two tensors are named %s (a dotted key beside nested dicts)", name)
		}
		named[name] = true
		size, err := r.storageBytes()
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		b, ok := storages[r.key]
		if !ok {
			// Checked before reading: a record of another size, or a
			// compressed one (torch.save writes none), could make a small
			// file fill the memory.
			f, err := storageRecord(files, prefix, r, size)
			if err != nil {
				return fmt.Errorf("a damaged archive: %w (tensor %s)", err, name)
			}
			if f.Method != zip.Store {
				return fmt.Errorf("tensor %s: storage record data/%s is compressed; torch.save stores records as they are", name, r.key)
			}
			if b, err = readRecord(f, maxRecord); err != nil {
				return fmt.Errorf("a damaged archive: tensor %s: %w", name, err)
			}
			storages[r.key] = b
		}
		t, err := r.materialise(name, b)
		if err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no tensors in the file")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readRecord(f *zip.File, limit uint64) ([]byte, error) {
	if f.UncompressedSize64 > limit {
		return nil, fmt.Errorf("record %s is %d bytes, more than %d", f.Name, f.UncompressedSize64, limit)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	defer r.Close()
	// The index's size (checked against limit above) sizes the buffer at
	// once: growing it by doubling would copy a large record several
	// times and leave as much garbage.
	b := make([]byte, f.UncompressedSize64)
	if n, err := io.ReadFull(r, b); err == io.ErrUnexpectedEOF || err == io.EOF {
		return nil, fmt.Errorf("record %s: %d bytes, the index says %d", f.Name, n, f.UncompressedSize64)
	} else if err != nil {
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	// Reading on to the end makes the zip reader check the record's CRC-32.
	switch extra, err := r.Read(make([]byte, 1)); {
	case extra > 0:
		return nil, fmt.Errorf("record %s: more bytes than the index says (%d)", f.Name, f.UncompressedSize64)
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	return b, nil
}

// flatten walks dicts down to tensors, joining string keys with dots; a
// tensor under another key (an integer) is named with it in brackets,
// normal_det_adapters[5], so that a reader refuses it by name rather than
// never see it. A pickle can make a dict hold itself: depth is bounded.
func flatten(v any, prefix string, depth int, fn func(string, *tensorRef) error) error {
	if depth > 32 {
		return fmt.Errorf("%s: dicts nested more than 32 deep", prefix)
	}
	switch x := v.(type) {
	case *tensorRef:
		if prefix == "" {
			prefix = "tensor"
		}
		return fn(prefix, x)
	case *dict:
		for _, k := range x.keys {
			var name string
			switch ks, ok := k.(string); {
			case !ok:
				name = fmt.Sprintf("%s[%v]", prefix, k)
			case prefix == "":
				name = ks
			default:
				name = prefix + "." + ks
			}
			if err := flatten(x.vals[k], name, depth+1, fn); err != nil {
				return err
			}
		}
	}
	return nil // other values carry no weights
}

// tensorRef is a tensor as the pickle describes it: a view of a storage.
type tensorRef struct {
	key    string // storage record
	dtype  safetensors.DType
	numel  int64 // of the storage
	offset int64
	size   []int64
	stride []int64
}

// storageBytes is the size of the tensor's storage in bytes, checked
// against maxRecord before it is multiplied out.
func (r *tensorRef) storageBytes() (int64, error) {
	es := int64(r.dtype.Size())
	if r.numel < 0 || r.numel > maxRecord/es {
		return 0, fmt.Errorf("its storage data/%s claims %d elements; at most %d bytes are read", r.key, r.numel, int64(maxRecord))
	}
	return r.numel * es, nil
}

// materialise copies the view's elements out of the storage, contiguous.
func (r *tensorRef) materialise(name string, storage []byte) (Tensor, error) {
	es := int64(r.dtype.Size())
	size, err := r.storageBytes()
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %s: %w", name, err)
	}
	if int64(len(storage)) < size {
		return Tensor{}, fmt.Errorf("tensor %s: storage data/%s has %d bytes, its %d elements need %d", name, r.key, len(storage), r.numel, size)
	}
	if len(r.size) != len(r.stride) || len(r.size) > maxDims {
		return Tensor{}, fmt.Errorf("tensor %s: %d sizes and %d strides (at most %d dimensions)", name, len(r.size), len(r.stride), maxDims)
	}
	beyond := fmt.Errorf("tensor %s: its view (offset %d, size %v, stride %v) reaches beyond its storage of %d elements", name, r.offset, r.size, r.stride, r.numel)
	if r.offset < 0 || r.offset > r.numel {
		return Tensor{}, beyond
	}
	n := int64(1)
	last := r.offset // the furthest element the view reaches, never past numel: no overflow
	for i, s := range r.size {
		if s < 0 || r.stride[i] < 0 {
			return Tensor{}, fmt.Errorf("tensor %s: negative size or stride (%v, %v)", name, r.size, r.stride)
		}
		if s == 0 {
			n = 0
			break
		}
		if n > (1<<40)/s {
			return Tensor{}, fmt.Errorf("tensor %s: size %v is too large", name, r.size)
		}
		n *= s
		if s > 1 && r.stride[i] > 0 && (s-1) > (r.numel-last)/r.stride[i] {
			return Tensor{}, beyond
		}
		last += (s - 1) * r.stride[i]
	}
	if n > r.numel {
		// Only overlapping strides (an expanded tensor) give a view more
		// elements than its storage: copied out, 1 stored float could
		// claim terabytes.
		return Tensor{}, fmt.Errorf("tensor %s: its view (size %v, stride %v) repeats the %d elements of its storage (an expanded tensor); save it with .contiguous() first", name, r.size, r.stride, r.numel)
	}
	if n > 0 && last >= r.numel {
		return Tensor{}, beyond
	}
	if r.contiguous() { // a slice of the storage, not a copy: a GiB of weights is held once
		from, to := r.offset*es, (r.offset+n)*es
		return Tensor{Name: name, DType: r.dtype, Shape: append([]int64{}, r.size...), Data: storage[from:to:to]}, nil
	}
	out := make([]byte, n*es)
	idx := make([]int64, len(r.size))
	for e := int64(0); e < n; e++ {
		src := r.offset
		for d, i := range idx {
			src += i * r.stride[d]
		}
		copy(out[e*es:(e+1)*es], storage[src*es:(src+1)*es])
		for d := len(idx) - 1; d >= 0; d-- { // next index, last dimension fastest
			idx[d]++
			if idx[d] < r.size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return Tensor{Name: name, DType: r.dtype, Shape: append([]int64{}, r.size...), Data: out}, nil
}

// contiguous reports whether the strides are the row-major ones of size.
func (r *tensorRef) contiguous() bool {
	want := int64(1)
	for d := len(r.size) - 1; d >= 0; d-- {
		if r.size[d] != 1 && r.stride[d] != want {
			return false
		}
		want *= r.size[d]
	}
	return true
}
