package imaging

// Resizing is PIL's bicubic resample (Image.resize(size, BICUBIC)),
// byte for byte: per-output-pixel taps of the cubic kernel, antialiased
// when shrinking, in fixed point, a horizontal pass into 8-bit rows and
// then a vertical pass. The taps are computed here in Go; the two passes
// run in C, where the compiler vectorises the inner loops that Go's does
// not (twice as fast as the same loops in Go on a colour scan). Every
// index the C code reads or writes comes from a region and taps checked
// against the image's size before the call; FuzzResize holds the passes to
// a plain Go reference.

/*
#cgo CFLAGS: -O3
#include <stdint.h>

enum { mc_precision = 32 - 8 - 2 };

static inline uint8_t mc_clip8(int32_t v) {
	if (v >= (1 << mc_precision << 8)) return 255;
	if (v <= 0) return 0;
	return (uint8_t)(v >> mc_precision);
}

// mc_horizontal filters rows rows of in (3 bytes a pixel, in_stride bytes
// a row) into out (ch bytes a pixel, cw pixels a row): output pixel x sums
// the count[x] taps k[x*kmax ...] over the input pixels from first[x]. With
// ch = 1 it reads the first channel alone.
static void mc_horizontal(const uint8_t *in, int64_t in_stride, int64_t rows, uint8_t *out, int ch, int64_t cw,
                          const int32_t *first, const int32_t *count, const int32_t *k, int64_t kmax) {
	for (int64_t y = 0; y < rows; y++) {
		const uint8_t *row = in + y * in_stride;
		uint8_t *dst = out + y * ch * cw;
		for (int64_t x = 0; x < cw; x++) {
			const uint8_t *src = row + 3 * (int64_t)first[x];
			const int32_t *kx = k + x * kmax;
			int32_t n = count[x];
			if (ch == 1) {
				int32_t s = 1 << (mc_precision - 1);
				for (int64_t t = 0; t < n; t++) s += src[3 * t] * kx[t];
				dst[x] = mc_clip8(s);
				continue;
			}
			int32_t s0 = 1 << (mc_precision - 1), s1 = s0, s2 = s0;
			for (int64_t t = 0; t < n; t++) {
				s0 += src[3 * t] * kx[t];
				s1 += src[3 * t + 1] * kx[t];
				s2 += src[3 * t + 2] * kx[t];
			}
			dst[3 * x] = mc_clip8(s0);
			dst[3 * x + 1] = mc_clip8(s1);
			dst[3 * x + 2] = mc_clip8(s2);
		}
	}
}

// mc_vertical filters the rows of in (stride bytes each) into rows RGB
// rows of out: output row y sums the count[y] taps k[y*kmax ...] over the
// input rows from first[y], accumulating in acc (stride values). With
// ch = 1 each grey value is written as three equal channels.
static void mc_vertical(const uint8_t *in, int64_t stride, uint8_t *out, int64_t rows, int ch,
                        const int32_t *first, const int32_t *count, const int32_t *k, int64_t kmax, int32_t *acc) {
	for (int64_t y = 0; y < rows; y++) {
		for (int64_t i = 0; i < stride; i++) acc[i] = 1 << (mc_precision - 1);
		for (int32_t t = 0; t < count[y]; t++) {
			const uint8_t *src = in + ((int64_t)first[y] + t) * stride;
			int32_t c = k[y * kmax + t];
			for (int64_t i = 0; i < stride; i++) acc[i] += src[i] * c;
		}
		uint8_t *dst = out + y * stride * (ch == 1 ? 3 : 1);
		if (ch == 1) {
			for (int64_t i = 0; i < stride; i++) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = mc_clip8(acc[i]);
		} else {
			for (int64_t i = 0; i < stride; i++) dst[i] = mc_clip8(acc[i]);
		}
	}
}
*/
import "C"

import (
	"fmt"
	"image"
	"math"
	"unsafe"
)

// bicubic is PIL's cubic convolution kernel (a = -0.5).
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

const precisionBits = 32 - 8 - 2

// taps are PIL's filter taps for some consecutive outputs of a resize:
// output i sums count[i] input pixels from first[i], weighted by
// k[i*kmax:], in fixed point (precisionBits).
type taps struct {
	first, count, k []int32
	kmax            int
}

// coefficients are the taps for resizing n input pixels to m, for the
// outputs from to to-1. Both ends of the taps only move forward with the
// output, and every tap lies within the n inputs.
func coefficients(n, m, from, to int) taps {
	scale := float64(n) / float64(m)
	filterscale := math.Max(scale, 1)
	support := 2 * filterscale
	kmax := min(int(math.Ceil(support))*2+1, n) // no output reads more than the n inputs
	t := taps{first: make([]int32, to-from), count: make([]int32, to-from), k: make([]int32, (to-from)*kmax), kmax: kmax}
	w := make([]float64, kmax)
	for xx := from; xx < to; xx++ {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), n) - xmin
		ww := 0.0
		for x := range xmax {
			w[x] = bicubic((float64(x+xmin) - center + 0.5) / filterscale)
			ww += w[x]
		}
		ks := t.k[(xx-from)*kmax : (xx-from)*kmax+xmax]
		for x := range ks {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				ks[x] = int32(v*(1<<precisionBits) - 0.5)
			} else {
				ks[x] = int32(v*(1<<precisionBits) + 0.5)
			}
		}
		t.first[xx-from], t.count[xx-from] = int32(xmin), int32(xmax)
	}
	return t
}

// check panics unless every tap lies within n inputs: the C passes trust
// them. A failure is a bug in coefficients, never a property of an input.
func (t taps) check(n int) {
	for i, f := range t.first {
		if f < 0 || t.count[i] < 0 || int(t.count[i]) > t.kmax || int(f)+int(t.count[i]) > n {
			panic(fmt.Sprintf("imaging: resize tap %d reads [%d, %d) of %d inputs", i, f, f+t.count[i], n))
		}
	}
}

// ResizeBytes is about the most memory Resize takes to scale a w×h image
// to tw×th: its output, the rows of the horizontal pass that the vertical
// pass reads, and both passes' filter taps. Small for a scan of any common
// shape; for a strip thousands of times longer than wide it exceeds the
// image many times over.
func ResizeBytes(w, h, tw, th int) int64 {
	taps := func(n, m int) int64 { // per output pixel, at most
		return min(int64(n), int64(2*math.Ceil(2*math.Max(float64(n)/float64(m), 1))+1))
	}
	rows := int64(th)
	b := 3 * int64(tw) * int64(th)
	if h != th {
		rows = int64(h)
		b += int64(th) * (4*taps(h, th) + 64) // and each tap list's slice, start and rounding
	}
	if w != tw {
		b += int64(tw) * (4*taps(w, tw) + 64)
	}
	return b + 3*int64(tw)*rows
}

// Resize scales the image to w×h with PIL's bicubic filter (antialiased
// when shrinking, fixed-point, horizontal pass first), as
// PIL.Image.resize(size, Image.BICUBIC) does, byte for byte.
func (m *RGB) Resize(w, h int) *RGB { return m.ResizeCrop(w, h, image.Rect(0, 0, w, h)) }

// ResizeCrop is Resize(w, h) cut to r, which lies within w×h: the same
// bytes, computed for r alone from the input rows and columns it needs, so
// that the centre of a scan a thousand times longer than wide is not
// resized whole first. A grey image (three equal channels, as most scans
// are) is resized as one channel: PIL filters each channel alike, so the
// bytes are the same at a third of the work.
func (m *RGB) ResizeCrop(w, h int, r image.Rectangle) *RGB {
	// What the C passes trust; a caller's bug, never an input's.
	if w <= 0 || h <= 0 || !r.In(image.Rect(0, 0, w, h)) || m.W <= 0 || m.H <= 0 || len(m.Pix) < 3*m.W*m.H {
		panic(fmt.Sprintf("imaging: resize of a %dx%d image (%d bytes) to %dx%d cut to %v", m.W, m.H, len(m.Pix), w, h, r))
	}
	if r.Empty() {
		return NewRGB(max(0, r.Dx()), max(0, r.Dy()))
	}
	// The rows the vertical pass reads, from its taps.
	var vt, ht *taps
	rows := [2]int{r.Min.Y, r.Max.Y}
	if h != m.H {
		t := coefficients(m.H, h, r.Min.Y, r.Max.Y)
		t.check(m.H)
		last := len(t.first) - 1
		rows = [2]int{int(t.first[0]), int(t.first[last] + t.count[last])}
		for i := range t.first { // relative to the rows the horizontal pass makes
			t.first[i] -= int32(rows[0])
		}
		t.check(rows[1] - rows[0])
		vt = &t
	}
	if w != m.W {
		t := coefficients(m.W, w, r.Min.X, r.Max.X)
		t.check(m.W)
		ht = &t
	}
	ch := 3 // channels the passes carry
	if m.grey() {
		ch = 1
	}
	// The horizontal pass, over those rows and r's columns.
	cw := r.Dx()
	stride := ch * cw
	tmp := make([]byte, stride*(rows[1]-rows[0]))
	if ht != nil {
		C.mc_horizontal((*C.uint8_t)(unsafe.Pointer(&m.Pix[3*rows[0]*m.W])), C.int64_t(3*m.W), C.int64_t(rows[1]-rows[0]),
			(*C.uint8_t)(unsafe.Pointer(&tmp[0])), C.int(ch), C.int64_t(cw),
			(*C.int32_t)(unsafe.Pointer(&ht.first[0])), (*C.int32_t)(unsafe.Pointer(&ht.count[0])), (*C.int32_t)(unsafe.Pointer(&ht.k[0])), C.int64_t(ht.kmax))
	} else {
		for y := rows[0]; y < rows[1]; y++ {
			row := m.Pix[3*(y*m.W+r.Min.X) : 3*(y*m.W+r.Max.X)]
			dst := tmp[(y-rows[0])*stride : (y-rows[0]+1)*stride]
			if ch == 3 {
				copy(dst, row)
				continue
			}
			for x := range dst {
				dst[x] = row[3*x]
			}
		}
	}
	if vt == nil && ch == 3 {
		return &RGB{W: cw, H: r.Dy(), Pix: tmp}
	}
	out := NewRGB(cw, r.Dy())
	if vt == nil {
		spread(out.Pix, tmp)
		return out
	}
	acc := make([]int32, stride)
	C.mc_vertical((*C.uint8_t)(unsafe.Pointer(&tmp[0])), C.int64_t(stride), (*C.uint8_t)(unsafe.Pointer(&out.Pix[0])), C.int64_t(r.Dy()), C.int(ch),
		(*C.int32_t)(unsafe.Pointer(&vt.first[0])), (*C.int32_t)(unsafe.Pointer(&vt.count[0])), (*C.int32_t)(unsafe.Pointer(&vt.k[0])), C.int64_t(vt.kmax),
		(*C.int32_t)(unsafe.Pointer(&acc[0])))
	return out
}

// grey says whether every pixel has three equal channels.
func (m *RGB) grey() bool {
	p := m.Pix
	for i := 0; i+2 < len(p); i += 3 {
		if p[i] != p[i+1] || p[i] != p[i+2] {
			return false
		}
	}
	return true
}

// spread writes each grey value of src as an RGB pixel of dst.
func spread(dst, src []byte) {
	for i, v := range src {
		dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
	}
}
