package infer

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"madclip/atomicfile"
	"madclip/authorship"
)

// WriteNPY writes a float32 array of the given shape as a NumPy .npy file
// (version 1.0, little-endian, madclip's header signature), atomically.
func WriteNPY(path string, data []float32, shape ...int) error {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if n != len(data) {
		return fmt.Errorf("npy %s: %d values for shape %v", path, len(data), shape)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write(authorship.NPYHeader(shape...)); err != nil {
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
