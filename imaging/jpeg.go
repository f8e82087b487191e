package imaging

// JPEG decoding goes through libjpeg-turbo, the library PIL decodes with,
// with PIL's settings (libjpeg's defaults: the accurate integer IDCT and
// fancy upsampling), so that decoded pixels equal PIL's byte for byte.
// Go's image/jpeg differs from it by up to 122/255 on the colour JPEGs of
// the tests (chroma upsampling, progressive files). The C side is
// codecs/jpeg.c; libjpeg is linked statically and kept private to it (see
// codecs/codecs.h): the binary needs no libjpeg at run time.

/*
#cgo LDFLAGS: -L${SRCDIR}/../build -l:libmadclip_codecs.a
#include <stdlib.h>
#include "codecs/codecs.h"
*/
import "C"

import (
	"errors"
	"strings"
	"unsafe"
)

// decodeJPEG decodes a whole JPEG file's bytes to RGB as PIL's
// Image.open(...).convert("RGB") does: grey replicated, CMYK (inverted when
// an Adobe marker says so, as PIL reads it) converted with PIL's formula.
//
// A file that runs out of data is refused; so is one whose compressed data
// libjpeg finds damaged, unless acceptDamaged (see Limits.DamagedJPEG).
func decodeJPEG(data []byte, maxPixels int64, acceptDamaged bool) (*RGB, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file, not an image")
	}
	var w, h, comps, adobe C.int
	var msg [C.MC_MSG_MAX]C.char
	p := C.mc_jpeg_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.ulonglong(maxPixels), C.int(boolInt(acceptDamaged)), &w, &h, &comps, &adobe, &msg[0], C.size_t(len(msg)))
	if p == nil {
		m := C.GoString(&msg[0])
		if m == "truncated image: the JPEG data ends early" || strings.HasPrefix(m, "the image claims") || strings.HasPrefix(m, "damaged JPEG") {
			return nil, errors.New(m)
		}
		return nil, errors.New("corrupt JPEG: " + m)
	}
	defer C.free(unsafe.Pointer(p))
	n := int(w) * int(h)
	src := unsafe.Slice((*byte)(unsafe.Pointer(p)), n*int(comps))
	m := NewRGB(int(w), int(h))
	switch comps {
	case 1:
		for i, v := range src {
			m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2] = v, v, v
		}
	case 3:
		copy(m.Pix, src)
	case 4:
		for i := range n {
			cyan, magenta, yellow, k := src[4*i], src[4*i+1], src[4*i+2], src[4*i+3]
			if adobe != 0 {
				cyan, magenta, yellow, k = 255-cyan, 255-magenta, 255-yellow, 255-k
			}
			m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2] = cmykChannel(cyan, k), cmykChannel(magenta, k), cmykChannel(yellow, k)
		}
	}
	return m, nil
}

// cmykChannel is PIL's CMYK to RGB conversion of one channel:
// (255 − k) − v·(255 − k)/255, rounded as PIL's MULDIV255.
func cmykChannel(v, k byte) byte {
	nk := 255 - int(k)
	t := int(v)*nk + 128
	r := nk - ((t>>8)+t)>>8
	return byte(max(0, min(255, r)))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
