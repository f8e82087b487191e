// Package authorship marks the files madclip writes and recognises them
// later, so that an output replaces only a file madclip wrote (or an empty
// one): a user's own scan, notes or model at the path of an output are
// never overwritten. Each format carries the mark where its readers ignore
// it (docs/design.md, "Outputs"):
//
//   - PNG: a tEXt chunk Software=madclip right after the header chunk;
//   - JPEG: a comment segment "madclip" right after the start marker;
//   - safetensors: written_by=madclip in the metadata;
//   - torch.save zip archives: the archive comment "madclip";
//   - JSON: a "madclip_version" key in the document, its first object or
//     the first object's "provenance";
//   - NumPy .npy: the header's keys in the order shape, descr,
//     fortran_order, which NumPy's own writer (sorted keys) never uses. The
//     format has no room for a mark every reader ignores, so this one is a
//     signature rather than a mark.
package authorship

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"madclip/internal/regularfile"
)

// Name is the mark's text: PNG's Software value, JPEG's comment, the
// value of safetensors' written_by, the zip archive comment.
const Name = "madclip"

// maxJSON bounds how much of a JSON file is read to find its mark.
const maxJSON = 64 << 20

// Written reports whether the regular file at path was written by madclip,
// judged by its mark; an empty file counts as written (replacing it loses
// nothing). A file that cannot be read is an error.
func Written(path string) (bool, error) {
	f, err := regularfile.Open(path) // a pipe put there meanwhile cannot block
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() == 0 {
		return true, nil
	}
	r := bufio.NewReader(f)
	head, _ := r.Peek(8)
	text := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case bytes.HasPrefix(head, []byte(pngSignature)):
		return pngMarked(r), nil
	case bytes.HasPrefix(head, []byte{0xff, 0xd8}):
		return jpegMarked(r), nil
	case bytes.HasPrefix(head, []byte(npyMagic)):
		return npyMarked(r), nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return zipMarked(f, st.Size()), nil
	case len(head) == 8 && safetensorsHeader(head, st.Size()):
		return safetensorsMarked(r, binary.LittleEndian.Uint64(head)), nil
	case len(text) > 0 && (text[0] == '{' || text[0] == '['):
		return jsonMarked(io.LimitReader(r, maxJSON)), nil
	}
	return false, nil
}

// ErrNotWritten is what Refusal wraps: the file at an output's path is
// not one madclip wrote.
var ErrNotWritten = errors.New("it exists and madclip did not write it; refusing to replace it (remove it or choose another name)")

// Refusal is nil when the regular file at path may be replaced (madclip
// wrote it, or it is empty), or says why not.
func Refusal(path string) error {
	ok, err := Written(path)
	if err != nil {
		return fmt.Errorf("cannot read it to tell whether madclip wrote it: %w", err)
	}
	if !ok {
		return ErrNotWritten
	}
	return nil
}

// safetensorsHeader says whether the first 8 bytes read as a safetensors
// header length that fits the file and is followed by a JSON object (the
// ninth byte is checked by the metadata reader).
func safetensorsHeader(head []byte, size int64) bool {
	n := binary.LittleEndian.Uint64(head)
	return n >= 2 && n <= 100<<20 && int64(n) <= size-8
}

// safetensorsMarked reads the header (of n bytes, after the 8-byte
// length) and looks for madclip's metadata.
func safetensorsMarked(r *bufio.Reader, n uint64) bool {
	if _, err := r.Discard(8); err != nil {
		return false
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return false
	}
	var hdr struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if json.Unmarshal(buf, &hdr) != nil {
		return false
	}
	return MetadataMarked(hdr.Meta)
}

// writtenBy is the safetensors metadata key of the mark.
const writtenBy = "written_by"

// MarkMetadata returns a copy of safetensors metadata with madclip's mark.
func MarkMetadata(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	out[writtenBy] = Name
	return out
}

// MetadataMarked says whether safetensors metadata is madclip's: marked
// by MarkMetadata, or by what files madclip wrote before the mark carried
// (a checkpoint's description under the Name key; converted_by, which
// scripts/convert_clip.py writes too).
func MetadataMarked(meta map[string]string) bool {
	return meta[writtenBy] == Name || meta[Name] != "" || meta["converted_by"] == Name
}

// jsonMarked looks for a "madclip_version" key in the document (an
// object), its first element (an array of objects), or the "provenance"
// object of either. The file must be that one document: JSON Lines, or a
// document followed by other text, are not madclip's files.
func jsonMarked(r io.Reader) bool {
	var doc any
	dec := json.NewDecoder(r)
	if dec.Decode(&doc) != nil {
		return false
	}
	if _, err := dec.Token(); err != io.EOF { // one document, nothing after it
		return false
	}
	if a, ok := doc.([]any); ok && len(a) > 0 {
		doc = a[0]
	}
	o, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	if p, ok := o["provenance"].(map[string]any); ok {
		o = p
	}
	v, ok := o["madclip_version"].(string)
	return ok && v != ""
}
