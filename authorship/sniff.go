package authorship

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Sniff says what a file whose first bytes are head most likely is, by its
// format's signature, in words for messages ("a PNG image"); "" when head
// matches none. Whoever wrote the file: a message can then say what a
// file is rather than only what it is not.
func Sniff(head []byte) string {
	text := bytes.TrimLeft(head, " \t\r\n\ufeff")
	switch {
	case bytes.HasPrefix(head, []byte(pngSignature[:4])): // a cut-off PNG too
		return "a PNG image"
	case bytes.HasPrefix(head, []byte{0xff, 0xd8, 0xff}):
		return "a JPEG image"
	case bytes.HasPrefix(head, []byte("GIF8")):
		return "a GIF image"
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return "a TIFF image"
	case bytes.HasPrefix(head, []byte(npyMagic)):
		return "a NumPy array"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "a zip archive"
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "a gzip file"
	case bytes.HasPrefix(head, []byte("%PDF")):
		return "a PDF document"
	case len(text) > 0 && (text[0] == '{' || text[0] == '['):
		return "a JSON document"
	}
	return ""
}

// MetadataKind is what a safetensors file's metadata says it holds when
// madclip wrote it: Checkpoint (a trained model's description under the
// Name key), Weights (converted CLIP weights), or None.
func MetadataKind(meta map[string]string) Kind {
	switch {
	case !MetadataMarked(meta):
		return None
	case meta[Name] != "":
		return Checkpoint
	}
	return Weights
}

// AuthorsAdapters is the key under which the authors' MadCLIP checkpoints
// (torch.save dicts, ckpt/{Obj}.pth) hold their normal adapters: a file
// with tensors named under it is theirs, for madclip import authors.
const AuthorsAdapters = "normal_det_adapters"

// HoldsAuthorsCheckpoint reports whether tensors of these names are the
// authors' checkpoint.
func HoldsAuthorsCheckpoint(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, AuthorsAdapters+".") {
			return true
		}
	}
	return false
}

// ErrCheckpointAsWeights marks CheckpointAsWeights' error, for errors.Is.
var ErrCheckpointAsWeights = errors.New("a madclip checkpoint (a trained model), not CLIP weights")

// CheckpointAsWeights is the error for a madclip checkpoint given where CLIP
// weights belong, saying where it goes instead. role says how the file
// came: the flag that named it ("--weights"), or "load".
func CheckpointAsWeights(role, path string) error {
	return fmt.Errorf("%s %s: %w: predict and eval take it with --checkpoint", role, path, ErrCheckpointAsWeights)
}
