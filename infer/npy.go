package infer

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"madclip/atomicfile"
)

// WriteNPY writes a float32 array of the given shape as a NumPy .npy file
// (version 1.0, little-endian), atomically.
func WriteNPY(path string, data []float32, shape ...int) error {
	n := 1
	dims := make([]string, len(shape))
	for i, s := range shape {
		n *= s
		dims[i] = fmt.Sprint(s)
	}
	if n != len(data) {
		return fmt.Errorf("npy %s: %d values for shape %v", path, len(data), shape)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	// Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write([]byte("\x93NUMPY\x01\x00")); err != nil {
			return err
		}
		if err := binary.Write(w, binary.LittleEndian, uint16(len(header))); err != nil {
			return err
		}
		if _, err := io.WriteString(w, header); err != nil {
			return err
		}
		buf := make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		_, err := w.Write(buf)
		return err
	})
}
