// Package authorship marks the files madclip writes and recognises them
// later, so that an output replaces only a file madclip wrote (or an empty
// one): a user's own scan, notes or model at the path of an output are
// never overwritten, and a madclip file is replaced only by one of its kind
// (Identify, Refusal). Each format carries the mark where its readers
// ignore it (docs/design.md, "Outputs"):
//
//   - PNG: a tEXt chunk Software=madclip right after the header chunk
//     (Software=madclip synth for a synthetic scan, which is data);
//   - JPEG: a comment segment "madclip" ("madclip synth" for a synthetic
//     scan) right after the start marker;
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
	"syscall"

	"madclip/internal/regularfile"
)

// Name is the mark's text: PNG's Software value, JPEG's comment, the
// value of safetensors' written_by, the zip archive comment.
const Name = "madclip"

// maxJSON bounds how much of a JSON file is read to find its mark.
const maxJSON = 64 << 20

// Kind is what a file madclip wrote holds, in words for messages ("a
// madclip checkpoint"); None is a file madclip did not write.
type Kind string

// The kinds of file madclip writes.
const (
	None       Kind = ""
	Empty      Kind = "an empty file"
	PNG        Kind = "a PNG picture"
	JPEG       Kind = "a JPEG image"
	Scan       Kind = "a synthetic scan (madclip synth)"
	NPY        Kind = "a NumPy array"
	Archive    Kind = "a torch.save archive"
	Checkpoint Kind = "a madclip checkpoint"
	Weights    Kind = "CLIP weights"
	JSON       Kind = "a JSON report"
)

// Identify says what the regular file at path holds if madclip wrote it,
// judged by its mark, or None. A file that cannot be read is an error.
func Identify(path string) (Kind, error) {
	f, err := regularfile.Open(path) // a pipe put there meanwhile cannot block
	if err != nil {
		return None, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return None, err
	}
	if st.Size() == 0 {
		return Empty, nil
	}
	r := bufio.NewReader(f)
	head, _ := r.Peek(8)
	text := bytes.TrimLeft(head, " \t\r\n")
	kind, marked := None, false
	switch {
	case bytes.HasPrefix(head, []byte(pngSignature)):
		return imageKind(pngMark(r), PNG), nil
	case bytes.HasPrefix(head, []byte{0xff, 0xd8}):
		return imageKind(jpegMark(r), JPEG), nil
	case bytes.HasPrefix(head, []byte(npyMagic)):
		kind, marked = NPY, npyMarked(r)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		kind, marked = Archive, zipMarked(f, st.Size())
	case len(head) == 8 && safetensorsHeader(head, st.Size()):
		return safetensorsKind(r, binary.LittleEndian.Uint64(head)), nil
	case len(text) > 0 && (text[0] == '{' || text[0] == '['):
		kind, marked = JSON, jsonMarked(io.LimitReader(r, maxJSON))
	}
	if !marked {
		return None, nil
	}
	return kind, nil
}

// Written reports whether the regular file at path was written by madclip,
// judged by its mark; an empty file counts as written (replacing it loses
// nothing). A file that cannot be read is an error.
func Written(path string) (bool, error) {
	k, err := Identify(path)
	return k != None, err
}

// ErrNotWritten is what Refusal wraps: the file at an output's path is
// not one madclip wrote.
var ErrNotWritten = errors.New("it exists and madclip did not write it; refusing to replace it (remove it or choose another name)")

// Refusal is nil when the regular file at path may be replaced by a file
// of kind want (madclip wrote it and it is of that kind, or it is empty;
// any kind madclip writes when want is None), or says why not: a model is
// never lost to a report given its name by mistake. It also returns what
// the file holds, for a later Replaceable once want is known.
func Refusal(path string, want Kind) (have Kind, err error) {
	if have, err = Identify(path); err != nil {
		return None, fmt.Errorf("cannot read it to tell whether madclip wrote it: %w", err)
	}
	// A file its owner protected from writing is not replaced behind its
	// back (the rename would succeed where cp fails).
	const wOK = 2
	if err := syscall.Access(path, wOK); errors.Is(err, syscall.EACCES) {
		return have, errors.New("it is write-protected; refusing to replace it (make it writable, remove it, or choose another name)")
	}
	return have, Replaceable(have, want)
}

// Replaceable is Refusal for a file already identified as have.
func Replaceable(have, want Kind) error {
	switch {
	case have == None:
		return ErrNotWritten
	case have == Empty || want == None || have == want:
		return nil
	}
	return fmt.Errorf("it holds %s; refusing to replace it with %s (remove it or choose another name)", have, want)
}

// safetensorsHeader says whether the first 8 bytes read as a safetensors
// header length that fits the file and is followed by a JSON object (the
// ninth byte is checked by the metadata reader).
func safetensorsHeader(head []byte, size int64) bool {
	n := binary.LittleEndian.Uint64(head)
	return n >= 2 && n <= 100<<20 && int64(n) <= size-8
}

// safetensorsKind reads the header (of n bytes, after the 8-byte length)
// and tells a checkpoint (its description under the Name key) from other
// safetensors madclip wrote (converted weights), by madclip's metadata.
func safetensorsKind(r *bufio.Reader, n uint64) Kind {
	if _, err := r.Discard(8); err != nil {
		return None
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return None
	}
	var hdr struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if json.Unmarshal(buf, &hdr) != nil {
		return None
	}
	return MetadataKind(hdr.Meta)
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
