package imaging

// PNG decoding is written here, with zlib (the library PIL inflates with)
// doing the inflating: Go's compress/flate took about half the time of
// preparing a PNG scan, and with zlib preparing one takes less than half
// as long as it did (scripts/bench_prepare.sh).
// The chunk rules, the accepted bit depths and colour types and what each
// gives in RGB are those of Go's image/png followed by FromImage (the
// decoder madclip used before, whose pixels equal PIL's for every kind of
// PNG): FuzzPNG holds this decoder to it, pixel for pixel. Two things
// differ: a 16-bit grey image with a tRNS chunk keeps its 16-bit samples
// (Go gave it as 16-bit RGBA, so a mask lost the clipping PIL applies),
// and bytes after the end of the zlib stream are ignored, as PIL ignores
// them (image/png refused 5,000 such bytes and passed 7: it depended on how
// far it had read ahead).
// The C side is codecs/inflate.c; zlib is linked statically and kept
// private to it (see codecs/codecs.h): the binary needs no libz at run time.

/*
#cgo LDFLAGS: -L${SRCDIR}/../build -l:libmadclip_codecs.a
#include "codecs/codecs.h"
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"io"
	"unsafe"
)

// pngFormatError is a PNG that breaks the format's rules.
type pngFormatError string

func (e pngFormatError) Error() string { return "png: invalid format: " + string(e) }

var errChunkOrder = pngFormatError("chunk out of order")

// pngLimitError is a PNG larger than the limits or the machine allow: the
// file may be sound, so it is not called corrupt.
type pngLimitError struct{ error }

// pngBytesPerPixel bounds what decoding a PNG holds at once: up to 8
// inflated bytes a pixel (16-bit RGBA) and the 3 of the RGB image.
const pngBytesPerPixel = 11

// pngHeader is what IHDR says of the image.
type pngHeader struct {
	w, h       int
	depth      int // bits per sample
	colour     byte
	interlaced bool
}

const (
	pngGrey      = 0
	pngRGB       = 2
	pngPalette   = 3
	pngGreyAlpha = 4
	pngRGBA      = 6
)

// pngStage is the last of the chunks that must come in order seen so far.
type pngStage int

const (
	seenNothing pngStage = iota
	seenIHDR
	seenPLTE
	seenTRNS
	seenIDAT
	seenIEND
)

// bitsPerPixel is the size of one pixel in the filtered data.
func (h pngHeader) bitsPerPixel() int {
	switch h.colour {
	case pngRGB:
		return 3 * h.depth
	case pngGreyAlpha:
		return 2 * h.depth
	case pngRGBA:
		return 4 * h.depth
	}
	return h.depth
}

// adam7 are the interlaced passes: first pixel and step, in x and in y.
var adam7 = [7][4]int{{0, 8, 0, 8}, {4, 8, 0, 8}, {0, 4, 4, 8}, {2, 4, 0, 4}, {0, 2, 2, 4}, {1, 2, 0, 2}, {0, 1, 1, 2}}

// pass is one run of filtered rows: the whole image, or an Adam7 pass.
type pass struct{ x0, dx, y0, dy, w, h int }

func (h pngHeader) passes() []pass {
	if !h.interlaced {
		return []pass{{0, 1, 0, 1, h.w, h.h}}
	}
	var ps []pass
	for _, a := range adam7 {
		p := pass{a[0], a[1], a[2], a[3], (h.w - a[0] + a[1] - 1) / a[1], (h.h - a[2] + a[3] - 1) / a[3]}
		if p.w > 0 && p.h > 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// rawSize is the size of the inflated data: each pass's rows, a filter
// byte and the row's pixels each.
func (h pngHeader) rawSize() int64 {
	var n int64
	for _, p := range h.passes() {
		n += int64(p.h) * (1 + (int64(p.w)*int64(h.bitsPerPixel())+7)/8)
	}
	return n
}

// pngChunks reads a PNG's chunks in order, checking each one's CRC.
type pngChunks struct {
	r   io.Reader
	buf [8]byte
	crc uint32
}

// next reads a chunk's length and type.
func (c *pngChunks) next() (length uint32, kind string, err error) {
	if _, err := io.ReadFull(c.r, c.buf[:8]); err != nil {
		return 0, "", err
	}
	length = binary.BigEndian.Uint32(c.buf[:4])
	if length > 0x7fffffff {
		return 0, "", pngFormatError(fmt.Sprintf("bad chunk length: %d", length))
	}
	c.crc = crc32.ChecksumIEEE(c.buf[4:8])
	return length, string(c.buf[4:8]), nil
}

// read fills p with the chunk's next bytes.
func (c *pngChunks) read(p []byte) error {
	if _, err := io.ReadFull(c.r, p); err != nil {
		return err
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	return nil
}

// skip reads n bytes of the chunk into nothing.
func (c *pngChunks) skip(n uint32) error {
	var b [4096]byte
	for n > 0 {
		k := min(uint32(len(b)), n)
		if err := c.read(b[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// end reads the chunk's CRC and checks it.
func (c *pngChunks) end() error {
	if _, err := io.ReadFull(c.r, c.buf[:4]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(c.buf[:4]) != c.crc {
		return pngFormatError("invalid checksum")
	}
	return nil
}

// decodePNG decodes the PNG stream r (its signature already checked by the
// caller, who passes the reader from there) within the limits l: to RGB,
// or, for 16-bit grey, to its samples (a mask clips them, a scan keeps the
// high byte).
func decodePNG(r io.Reader, l Limits) (*RGB, *image.Gray16, error) {
	c := &pngChunks{r: r}
	var sig [8]byte
	if _, err := io.ReadFull(r, sig[:]); err != nil {
		return nil, nil, err
	}
	var (
		h       pngHeader
		palette [][3]byte
		raw     []byte // the inflated data, once IDAT has been read
		stage   = seenNothing
	)
	for stage != seenIEND {
		length, kind, err := c.next()
		if err != nil {
			return nil, nil, err
		}
		switch kind {
		case "IHDR":
			if stage != seenNothing {
				return nil, nil, errChunkOrder
			}
			stage = seenIHDR
			if h, err = c.header(length, l); err != nil {
				return nil, nil, err
			}
			defer l.reserve(h.w, h.h)()
		case "PLTE":
			if stage != seenIHDR {
				return nil, nil, errChunkOrder
			}
			stage = seenPLTE
			if palette, err = c.palette(length, h); err != nil {
				return nil, nil, err
			}
		case "tRNS":
			if err := c.transparency(length, h, stage); err != nil {
				return nil, nil, err
			}
			stage = seenTRNS
		case "IDAT":
			if stage < seenIHDR || stage > seenIDAT || (stage == seenIHDR && h.colour == pngPalette) {
				return nil, nil, errChunkOrder
			}
			if stage == seenIDAT { // trailing IDAT chunks after the image's data
				if err := c.skip(length); err != nil {
					return nil, nil, err
				}
				err = c.end()
				break
			}
			stage = seenIDAT
			if raw, err = c.inflate(length, h.rawSize()); err != nil {
				return nil, nil, err
			}
		case "IEND":
			if stage != seenIDAT {
				return nil, nil, errChunkOrder
			}
			stage = seenIEND
			if length != 0 {
				return nil, nil, pngFormatError("bad IEND length")
			}
			err = c.end()
		default:
			if err := c.skip(length); err != nil {
				return nil, nil, err
			}
			err = c.end()
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return h.pixels(raw, palette)
}

// header reads IHDR: the size within the limits l, a bit depth and colour
// type PNG allows together, no interlacing but Adam7.
func (c *pngChunks) header(length uint32, l Limits) (pngHeader, error) {
	var h pngHeader
	if length != 13 {
		return h, pngFormatError("bad IHDR length")
	}
	var b [13]byte
	if err := c.read(b[:]); err != nil {
		return h, err
	}
	if b[10] != 0 {
		return h, errors.New("png: unsupported feature: compression method")
	}
	if b[11] != 0 {
		return h, errors.New("png: unsupported feature: filter method")
	}
	if b[12] > 1 {
		return h, pngFormatError("invalid interlace method")
	}
	w, hh := int32(binary.BigEndian.Uint32(b[0:4])), int32(binary.BigEndian.Uint32(b[4:8]))
	if w <= 0 || hh <= 0 {
		return h, pngFormatError("non-positive dimension")
	}
	h = pngHeader{w: int(w), h: int(hh), depth: int(b[8]), colour: b[9], interlaced: b[12] == 1}
	ok := false
	switch h.colour {
	case pngGrey:
		ok = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8 || h.depth == 16
	case pngPalette:
		ok = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8
	case pngRGB, pngGreyAlpha, pngRGBA:
		ok = h.depth == 8 || h.depth == 16
	}
	if !ok {
		return h, fmt.Errorf("png: unsupported feature: bit depth %d, color type %d", b[8], b[9])
	}
	if err := c.end(); err != nil { // a damaged header is named as such, not by the size it claims
		return h, err
	}
	if err := l.Allows(h.w, h.h); err != nil {
		return h, pngLimitError{err}
	}
	if err := fitsMemory(h.w, h.h, pngBytesPerPixel); err != nil {
		return h, pngLimitError{err}
	}
	// Whatever the limits say, the inflated size must be one Go can hold.
	if float64(h.h)*(1+(float64(h.w)*float64(h.bitsPerPixel())+7)/8) > 1<<50 {
		return h, pngLimitError{fmt.Errorf("the image claims %d×%d pixels, too many to decode", h.w, h.h)}
	}
	return h, nil
}

// palette reads PLTE: the colours of a palette image, ignored in a colour
// one, refused in a grey one.
func (c *pngChunks) palette(length uint32, h pngHeader) ([][3]byte, error) {
	n := int(length / 3)
	if length%3 != 0 || n <= 0 || n > 256 || n > 1<<h.depth {
		return nil, pngFormatError("bad PLTE length")
	}
	if h.colour != pngPalette && h.colour != pngRGB && h.colour != pngRGBA {
		return nil, pngFormatError("PLTE, color type mismatch")
	}
	b := make([]byte, 3*n)
	if err := c.read(b); err != nil {
		return nil, err
	}
	p := make([][3]byte, n)
	for i := range p {
		p[i] = [3]byte{b[3*i], b[3*i+1], b[3*i+2]}
	}
	return p, c.end()
}

// transparency reads tRNS, checked as image/png checks it and otherwise
// unused: madclip drops alpha as PIL's convert("RGB") does, and a palette
// colour is its colour whatever its transparency.
func (c *pngChunks) transparency(length uint32, h pngHeader, stage pngStage) error {
	switch h.colour {
	case pngPalette:
		if stage != seenPLTE {
			return errChunkOrder
		}
		if length > 256 {
			return pngFormatError("bad tRNS length")
		}
	case pngRGB:
		if stage != seenIHDR && stage != seenPLTE {
			return errChunkOrder
		}
		if length != 6 {
			return pngFormatError("bad tRNS length")
		}
	case pngGrey:
		if stage != seenIHDR {
			return errChunkOrder
		}
		if length != 2 {
			return pngFormatError("bad tRNS length")
		}
	default:
		if stage != seenIHDR {
			return errChunkOrder
		}
		return pngFormatError("tRNS, color type mismatch")
	}
	if err := c.skip(length); err != nil {
		return err
	}
	return c.end()
}

// inflate reads the image data, starting with the IDAT chunk of the given
// length and going on through the IDAT chunks that follow it until the
// zlib stream ends, and returns the size bytes it inflates to.
func (c *pngChunks) inflate(length uint32, size int64) ([]byte, error) {
	z := C.mc_inflate_new()
	if z == nil {
		return nil, errors.New("png: zlib could not start")
	}
	defer C.mc_inflate_free(z)
	raw := make([]byte, size+1) // one more: data past the image is an error
	var produced C.size_t
	in := make([]byte, min(int(length), 1<<20))
	var msg [C.MC_MSG_MAX]C.char
	for {
		for length > 0 {
			k := min(uint32(len(in)), length)
			if err := c.read(in[:k]); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
			length -= k
			switch C.mc_inflate(z, (*C.uint8_t)(unsafe.Pointer(&in[0])), C.size_t(k), (*C.uint8_t)(unsafe.Pointer(&raw[0])), C.size_t(len(raw)), &produced, &msg[0], C.size_t(len(msg))) {
			case 1: // the stream ended: what follows it is ignored
				if int64(produced) < size {
					return nil, pngFormatError("not enough pixel data")
				}
				if int64(produced) > size {
					return nil, pngFormatError("too much pixel data")
				}
				if err := c.skip(length); err != nil {
					return nil, err
				}
				return raw[:size], c.end()
			case 2:
				return nil, pngFormatError("too much pixel data")
			case -1:
				return nil, pngFormatError("zlib: " + C.GoString(&msg[0]))
			}
		}
		// The stream goes on in the next chunk, which must be an IDAT.
		if err := c.end(); err != nil {
			return nil, err
		}
		var kind string
		var err error
		if length, kind, err = c.next(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if kind != "IDAT" {
			if int64(produced) == size {
				return nil, pngFormatError("the zlib stream does not end after the pixel data")
			}
			return nil, pngFormatError("not enough pixel data")
		}
		if len(in) < int(min(length, 1<<20)) {
			in = make([]byte, min(length, 1<<20))
		}
	}
}

// pixels unfilters raw, pass by pass, and converts it: grey replicated,
// palette indices looked up (past the palette: black), alpha dropped,
// 16-bit samples to their high byte, low bit depths of grey scaled to 255.
func (h pngHeader) pixels(raw []byte, palette [][3]byte) (*RGB, *image.Gray16, error) {
	var out *RGB
	var g16 *image.Gray16
	if h.colour == pngGrey && h.depth == 16 {
		g16 = image.NewGray16(image.Rect(0, 0, h.w, h.h))
	} else {
		out = NewRGB(h.w, h.h)
	}
	var table [256][3]byte // palette, or grey levels of low bit depths
	switch {
	case h.colour == pngPalette:
		copy(table[:], palette)
	case h.colour == pngGrey && h.depth < 8:
		for v := range 1 << h.depth {
			g := byte(v * 255 / (1<<h.depth - 1))
			table[v] = [3]byte{g, g, g}
		}
	}
	bpp := max(h.bitsPerPixel()/8, 1) // bytes a pixel, for the filters
	for _, p := range h.passes() {
		rowSize := 1 + (p.w*h.bitsPerPixel()+7)/8
		prev := make([]byte, rowSize-1)
		for y := range p.h {
			row := raw[:rowSize]
			raw = raw[rowSize:]
			cur := row[1:]
			if err := unfilter(row[0], cur, prev, bpp); err != nil {
				return nil, nil, err
			}
			oy := p.y0 + y*p.dy
			if g16 != nil {
				for x := range p.w {
					at := g16.PixOffset(p.x0+x*p.dx, oy)
					g16.Pix[at], g16.Pix[at+1] = cur[2*x], cur[2*x+1]
				}
			} else {
				h.convertRow(out, cur, p, oy, &table)
			}
			prev = cur
		}
	}
	return out, g16, nil
}

// convertRow writes one unfiltered row of pass p to row oy of out.
func (h pngHeader) convertRow(out *RGB, cur []byte, p pass, oy int, table *[256][3]byte) {
	if p.dx == 1 && h.depth == 8 { // whole rows of the commonest kinds
		dst := out.Pix[3*oy*out.W : 3*(oy+1)*out.W]
		switch h.colour {
		case pngGrey:
			spread(dst, cur[:out.W])
			return
		case pngRGB:
			copy(dst, cur)
			return
		}
	}
	step := h.depth / 8 // bytes a sample (8 and 16 bits)
	for x := range p.w {
		at := 3 * (oy*out.W + p.x0 + x*p.dx)
		dst := out.Pix[at : at+3 : at+3]
		switch {
		case h.depth < 8: // grey or palette indices, packed from the high bit
			bit := x * h.depth
			v := cur[bit/8] >> (8 - h.depth - bit%8) & (1<<h.depth - 1)
			dst[0], dst[1], dst[2] = table[v][0], table[v][1], table[v][2]
		case h.colour == pngPalette:
			v := cur[x]
			dst[0], dst[1], dst[2] = table[v][0], table[v][1], table[v][2]
		case h.colour == pngGrey, h.colour == pngGreyAlpha:
			n := 1
			if h.colour == pngGreyAlpha {
				n = 2
			}
			v := cur[x*n*step]
			dst[0], dst[1], dst[2] = v, v, v
		default: // RGB or RGBA, 8 or 16 bits: the high bytes of R, G, B
			n := 3
			if h.colour == pngRGBA {
				n = 4
			}
			s := cur[x*n*step:]
			dst[0], dst[1], dst[2] = s[0], s[step], s[2*step]
		}
	}
}

// unfilter undoes a row's filter in place; prev is the pass's row above
// (zeros for its first row), bpp the bytes a pixel (at least 1).
func unfilter(kind byte, cur, prev []byte, bpp int) error {
	switch kind {
	case 0:
	case 1: // Sub
		for i := bpp; i < len(cur); i++ {
			cur[i] += cur[i-bpp]
		}
	case 2: // Up
		for i, p := range prev[:len(cur)] {
			cur[i] += p
		}
	case 3: // Average
		for i := 0; i < bpp && i < len(cur); i++ {
			cur[i] += prev[i] / 2
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += byte((int(cur[i-bpp]) + int(prev[i])) / 2)
		}
	case 4: // Paeth
		for i := range cur {
			var a, c int
			if i >= bpp {
				a, c = int(cur[i-bpp]), int(prev[i-bpp])
			}
			b := int(prev[i])
			p := a + b - c
			pa, pb, pc := abs(p-a), abs(p-b), abs(p-c)
			switch {
			case pa <= pb && pa <= pc:
				cur[i] += byte(a)
			case pb <= pc:
				cur[i] += byte(b)
			default:
				cur[i] += byte(c)
			}
		}
	default:
		return pngFormatError("bad filter type")
	}
	return nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
