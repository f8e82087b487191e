package imaging

import (
	"bytes"
	"image"
	"testing"
)

// referenceResize is the resize written plainly, one output byte at a
// time from the same taps, horizontal pass then vertical, every channel:
// what the C passes must equal, grey or colour, whole or cut.
func referenceResize(m *RGB, w, h int) *RGB {
	tmp := m
	if w != m.W {
		t := coefficients(m.W, w, 0, w)
		tmp = NewRGB(w, m.H)
		for y := range m.H {
			for x := range w {
				for c := range 3 {
					s := int32(1 << (precisionBits - 1))
					for i := range int(t.count[x]) {
						s += int32(m.Pix[3*(y*m.W+int(t.first[x])+i)+c]) * t.k[x*t.kmax+i]
					}
					tmp.Pix[3*(y*w+x)+c] = referenceClip(s)
				}
			}
		}
	}
	if h == m.H {
		return tmp
	}
	t := coefficients(m.H, h, 0, h)
	out := NewRGB(w, h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				s := int32(1 << (precisionBits - 1))
				for i := range int(t.count[y]) {
					s += int32(tmp.Pix[3*((int(t.first[y])+i)*w+x)+c]) * t.k[y*t.kmax+i]
				}
				out.Pix[3*(y*w+x)+c] = referenceClip(s)
			}
		}
	}
	return out
}

func referenceClip(v int32) byte {
	return byte(min(max(v, 0), 1<<(precisionBits+8)-1) >> precisionBits)
}

// FuzzResize: any image, any size to resize it to and any region of that
// gives the plain reference's bytes; grey images (the one-channel passes)
// when the first byte is even.
func FuzzResize(f *testing.F) {
	f.Add([]byte("\x00abcdefghijklmnopqrstuvwxyz0123456789"), uint8(5), uint8(30), uint8(11), uint8(2), uint8(3), uint8(4), uint8(5))
	f.Add([]byte("\x01\xff\x00\x80\x10\xf0"), uint8(2), uint8(1), uint8(40), uint8(0), uint8(0), uint8(40), uint8(3))
	f.Add([]byte{0}, uint8(1), uint8(1), uint8(1), uint8(0), uint8(0), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, sw, tw, th, x0, y0, cw, ch uint8) {
		if len(data) == 0 || sw == 0 || tw == 0 || th == 0 || cw == 0 || ch == 0 {
			return
		}
		grey := data[0]%2 == 0
		w, n := int(sw)%48+1, len(data)
		if !grey {
			n = (len(data) + 2) / 3
		}
		hh := (n + w - 1) / w
		m := NewRGB(w, hh)
		for i := range m.Pix {
			if grey {
				m.Pix[i] = data[(i/3)%len(data)]
			} else {
				m.Pix[i] = data[i%len(data)]
			}
		}
		W, H := int(tw)%64+1, int(th)%64+1
		r := image.Rect(int(x0)%W, int(y0)%H, 0, 0)
		r.Max = image.Pt(min(r.Min.X+int(cw), W), min(r.Min.Y+int(ch), H))
		want := referenceResize(m, W, H)
		got := m.ResizeCrop(W, H, r)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			row := want.Pix[3*(y*W+r.Min.X) : 3*(y*W+r.Max.X)]
			if !bytes.Equal(got.Pix[3*(y-r.Min.Y)*r.Dx():3*(y-r.Min.Y+1)*r.Dx()], row) {
				t.Fatalf("%dx%d (grey %v) to %dx%d cut to %v: row %d differs from the reference", m.W, m.H, m.grey(), W, H, r, y)
			}
		}
	})
}
