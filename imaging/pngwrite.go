package imaging

/*
#cgo LDFLAGS: -L${SRCDIR}/../build -l:libmadclip_codecs.a
#include "codecs/codecs.h"
*/
import "C"

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"unsafe"
)

// pngSignature starts every PNG file.
const pngSignature = "\x89PNG\r\n\x1a\n"

// pngLevel is the zlib level the pictures madclip writes are compressed
// at. With the Up filter on every row, level 3 writes the README's example
// panel in about a third of the time Go's image/png takes (adaptive
// filters, level 6), in a file about a fifth larger (BenchmarkEncodePNG);
// level 1 is hardly faster and much larger, level 6 about as small as
// image/png's and only about a third faster.
const pngLevel = 3

// pngIDATChunk is the most image data one IDAT chunk holds; pngBlock
// about how many bytes of filtered rows go to zlib at a time. Memory is
// bounded by these, not by the image.
const (
	pngIDATChunk = 1 << 20
	pngBlock     = 256 << 10
)

// EncodePNG writes img as an 8-bit PNG compressed by zlib: grey for
// *image.Gray, RGB for an opaque *image.RGBA, RGBA for *image.NRGBA. Every
// row has the Up filter (the difference from the row above), which suits
// the figures madclip draws: flat backgrounds, smooth maps, text. Other
// kinds of image (and an RGBA one with transparency) go to image/png.
func EncodePNG(w io.Writer, img image.Image) error {
	var colourType, channels int
	var pix []byte
	var stride int
	switch m := img.(type) {
	case *image.Gray:
		colourType, channels, pix, stride = 0, 1, m.Pix, m.Stride
	case *image.NRGBA:
		colourType, channels, pix, stride = 6, 4, m.Pix, m.Stride
	case *image.RGBA:
		if !m.Opaque() {
			return png.Encode(w, img)
		}
		colourType, channels, pix, stride = 2, 3, m.Pix, m.Stride
	default:
		return png.Encode(w, img)
	}
	b := img.Bounds()
	width, height := b.Dx(), b.Dy()
	if width <= 0 || height <= 0 || int64(width) > 1<<31-1 || int64(height) > 1<<31-1 {
		return errors.New("png: invalid image size " + b.String())
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(pngSignature)
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8], ihdr[9] = 8, byte(colourType) // bit depth; compression, filter and interlace methods 0
	writeChunk(bw, "IHDR", ihdr[:])
	rows := &upFilter{pix: pix, stride: stride, width: width, height: height, channels: channels, fromRGBA: colourType == 2}
	if err := deflateRows(bw, rows); err != nil {
		return err
	}
	writeChunk(bw, "IEND", nil)
	return bw.Flush()
}

// upFilter gives an image's rows (of the given channels, taken from 4-byte
// pixels, dropping alpha, when fromRGBA) as the PNG holds them: each led by
// the Up filter's type byte and holding each byte's difference from the
// byte above it (the first row's from zero).
type upFilter struct {
	pix                             []byte
	stride, width, height, channels int
	fromRGBA                        bool
	y                               int
	prev, cur                       []byte
}

// next returns the next rows, about pngBlock bytes of them, or nil after
// the last.
func (f *upFilter) next(buf []byte) []byte {
	rowLen := f.width * f.channels
	if f.prev == nil {
		f.prev, f.cur = make([]byte, rowLen), make([]byte, rowLen)
	}
	buf = buf[:0]
	for ; f.y < f.height && (len(buf) == 0 || len(buf)+1+rowLen <= pngBlock); f.y++ {
		src := f.pix[f.y*f.stride:]
		if f.fromRGBA {
			for x := range f.width {
				copy(f.cur[3*x:3*x+3], src[4*x:4*x+3])
			}
		} else {
			copy(f.cur, src[:rowLen])
		}
		buf = append(buf, 2) // Up
		for i, v := range f.cur {
			buf = append(buf, v-f.prev[i])
		}
		f.prev, f.cur = f.cur, f.prev
	}
	if len(buf) == 0 {
		return nil
	}
	return buf
}

// deflateRows compresses the filtered rows into one zlib stream at
// pngLevel, written as IDAT chunks of up to pngIDATChunk bytes.
func deflateRows(w *bufio.Writer, rows *upFilter) error {
	z := C.mc_deflate_new(pngLevel)
	if z == nil {
		return errors.New("png: zlib could not start")
	}
	defer C.mc_deflate_free(z)
	out := make([]byte, pngIDATChunk)
	used := 0
	buf := make([]byte, 0, pngBlock+1+rows.width*rows.channels)
	var msg [C.MC_MSG_MAX]C.char
	for in := rows.next(buf); ; {
		last := rows.y == rows.height
		var consumed, produced C.size_t
		var inPtr *C.uint8_t
		if len(in) > 0 {
			inPtr = (*C.uint8_t)(unsafe.Pointer(&in[0]))
		}
		ret := C.mc_deflate(z, inPtr, C.size_t(len(in)), C.int(boolInt(last)), (*C.uint8_t)(unsafe.Pointer(&out[used])), C.size_t(len(out)-used),
			&consumed, &produced, &msg[0], C.size_t(len(msg)))
		if ret < 0 {
			return errors.New("png: zlib: " + C.GoString(&msg[0]))
		}
		in, used = in[consumed:], used+int(produced)
		if used == len(out) || (ret == 1 && used > 0) {
			writeChunk(w, "IDAT", out[:used])
			used = 0
		}
		if ret == 1 {
			return nil
		}
		if len(in) == 0 && !last {
			in = rows.next(buf)
		}
	}
}

// writeChunk writes one PNG chunk: length, type, data, CRC of type and data.
func writeChunk(w *bufio.Writer, kind string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	w.Write(n[:])
	w.WriteString(kind)
	w.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(kind))
	crc.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}
