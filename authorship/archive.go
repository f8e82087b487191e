package authorship

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

const npyMagic = "\x93NUMPY"

// npyKeys starts madclip's .npy header: shape first, where NumPy's writer
// sorts the keys (descr first). Readers parse the header as a Python dict,
// so the order means nothing to them.
const npyKeys = "{'shape': ("

// NPYHeader is the complete header of a little-endian float32 .npy file
// (format version 1.0) of the given shape, madclip's signature included:
// magic, version, length and the padded dict, a multiple of 64 bytes.
func NPYHeader(shape ...int) []byte {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = fmt.Sprint(s)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	dict := npyKeys + tuple + "), 'descr': '<f4', 'fortran_order': False, }"
	pad := (64 - (10+len(dict)+1)%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	out := append([]byte(npyMagic), 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(dict)))
	return append(out, dict...)
}

func npyMarked(r *bufio.Reader) bool {
	head, err := r.Peek(10 + len(npyKeys))
	return err == nil && string(head[10:]) == npyKeys
}

// zipEnd is the length of a zip file's end record without its comment.
const zipEnd = 22

// MarkZip sets the archive comment of a zip file held in b (whose own
// comment must be empty, as torch.save's is) to madclip's mark. Zip
// readers, PyTorch's among them, find the end record before the comment.
func MarkZip(b []byte) ([]byte, error) {
	if len(b) < zipEnd || string(b[len(b)-zipEnd:len(b)-zipEnd+4]) != "PK\x05\x06" {
		return nil, errors.New("not a zip archive ending without a comment")
	}
	out := make([]byte, 0, len(b)+len(Name))
	out = append(out, b[:len(b)-2]...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(Name)))
	return append(out, Name...), nil
}

func zipMarked(f *os.File, size int64) bool {
	n := int64(zipEnd + len(Name))
	if size < n {
		return false
	}
	end := make([]byte, n)
	if _, err := f.ReadAt(end, size-n); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	return string(end[:4]) == "PK\x05\x06" && binary.LittleEndian.Uint16(end[20:22]) == uint16(len(Name)) && string(end[zipEnd:]) == Name
}
