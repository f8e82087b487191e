package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strings"
	"testing"
)

// pngSpec is a PNG written by hand, for kinds Go's encoder does not write
// (interlaced, low bit depths of grey, grey with alpha, 16-bit colour) and
// for broken files: the filtered rows come as given.
type pngSpec struct {
	w, h          int
	depth, colour byte
	interlaced    bool
	rows          []byte // filtered data: every row with its filter byte
	plte, trns    []byte // written when not nil
	zdata         []byte // the IDAT data, when not rows compressed
	idatSplits    int    // the compressed data in this many IDAT chunks
	extraIDAT     []byte // an IDAT chunk after the image data
	noIEND        bool
}

func pngChunk(w io.Writer, kind string, data []byte) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(len(data)))
	w.Write(b[:])
	crc := crc32.NewIEEE()
	io.WriteString(crc, kind)
	crc.Write(data)
	io.WriteString(w, kind)
	w.Write(data)
	binary.BigEndian.PutUint32(b[:], crc.Sum32())
	w.Write(b[:])
}

func (s pngSpec) encode() []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(s.w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(s.h))
	ihdr[8], ihdr[9] = s.depth, s.colour
	if s.interlaced {
		ihdr[12] = 1
	}
	pngChunk(&out, "IHDR", ihdr)
	if s.plte != nil {
		pngChunk(&out, "PLTE", s.plte)
	}
	if s.trns != nil {
		pngChunk(&out, "tRNS", s.trns)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(s.rows)
	zw.Close()
	data := z.Bytes()
	if s.zdata != nil {
		data = s.zdata
	}
	n := max(s.idatSplits, 1)
	for i := range n {
		pngChunk(&out, "IDAT", data[i*len(data)/n:(i+1)*len(data)/n])
	}
	if s.extraIDAT != nil {
		pngChunk(&out, "IDAT", s.extraIDAT)
	}
	if !s.noIEND {
		pngChunk(&out, "IEND", nil)
	}
	return out.Bytes()
}

// goPNG decodes data as madclip did before decodePNG: Go's image/png, then
// FromImage.
func goPNG(data []byte) (*RGB, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return FromImage(img), nil
}

// comparePNG decodes data both ways: where Go's decoder gives an image,
// decodePNG must give the same pixels.
func comparePNG(t *testing.T, what string, data []byte) {
	t.Helper()
	want, werr := goPNG(data)
	got, gerr := Decode(bytes.NewReader(data))
	switch {
	case werr == nil && gerr != nil:
		t.Fatalf("%s: image/png decodes it, decodePNG: %v", what, gerr)
	case werr == nil && (got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix)):
		t.Fatalf("%s: %dx%d differs from image/png's %dx%d", what, got.W, got.H, want.W, want.H)
	case gerr != nil && (got != nil || strings.Contains(gerr.Error(), "\n")):
		t.Fatalf("%s: %v with an image, or on several lines", what, gerr)
	}
}

// FuzzPNG: every kind of PNG (colour type, bit depth, interlacing, the
// five filters, palettes of any length, tRNS, the data over several IDAT
// chunks) decodes to what image/png and FromImage give.
func FuzzPNG(f *testing.F) {
	f.Add(uint8(7), uint8(5), uint8(0), uint8(8), false, []byte("\x00\x01\x02\x03\x04grey rows"), uint8(0), uint8(1))
	f.Add(uint8(9), uint8(9), uint8(3), uint8(2), true, []byte("palette, interlaced"), uint8(5), uint8(3))
	f.Add(uint8(3), uint8(4), uint8(6), uint8(16), true, []byte("RGBA 16"), uint8(1), uint8(2))
	f.Add(uint8(2), uint8(2), uint8(4), uint8(8), false, []byte{4, 4, 4, 4, 3, 3, 3}, uint8(2), uint8(1))
	f.Add(uint8(1), uint8(1), uint8(0), uint8(16), false, []byte{1, 2}, uint8(6), uint8(1))
	f.Fuzz(func(t *testing.T, w, h, colour, depth uint8, interlaced bool, data []byte, extras, splits uint8) {
		if len(data) == 0 {
			return
		}
		s := pngSpec{w: int(w)%40 + 1, h: int(h)%40 + 1, depth: depth, colour: colour % 7, interlaced: interlaced, idatSplits: int(splits)%4 + 1}
		hd := pngHeader{w: s.w, h: s.h, depth: int(depth), colour: s.colour, interlaced: interlaced}
		size := hd.rawSize()
		if size <= 0 || size > 1<<20 {
			return
		}
		s.rows = make([]byte, size)
		for i := range s.rows {
			s.rows[i] = data[i%len(data)] ^ byte(i/len(data))
		}
		// Valid filter bytes at each row's start, unless extras says not.
		at := 0
		for _, p := range hd.passes() {
			rowSize := 1 + (p.w*hd.bitsPerPixel()+7)/8
			for range p.h {
				if extras&64 == 0 {
					s.rows[at] %= 5
				}
				at += rowSize
			}
		}
		if s.colour == pngPalette || extras&1 != 0 {
			s.plte = make([]byte, 3*(int(extras>>1)%256+1))
			for i := range s.plte {
				s.plte[i] = byte(i*37) ^ data[0]
			}
		}
		if extras&8 != 0 {
			s.trns = data[:min(len(data), map[byte]int{pngGrey: 2, pngRGB: 6}[s.colour]+int(extras>>4)%2)]
			if s.colour == pngPalette {
				s.trns = data[:min(len(data), int(extras>>4))]
			}
		}
		if extras&128 != 0 {
			s.extraIDAT = data[:min(len(data), 7)]
		}
		comparePNG(t, "", s.encode())
	})
}

// Every kind image/png decodes, one image each, and files broken in the
// ways a decoder must notice.
func TestPNGKinds(t *testing.T) {
	rows := func(hd pngHeader, seed byte) []byte {
		b := make([]byte, hd.rawSize())
		at := 0
		for _, p := range hd.passes() {
			rowSize := 1 + (p.w*hd.bitsPerPixel()+7)/8
			for y := range p.h {
				b[at] = byte(y % 5)
				for i := 1; i < rowSize; i++ {
					b[at+i] = byte(i*31+y*7) ^ seed
				}
				at += rowSize
			}
		}
		return b
	}
	kinds := [][2]byte{{0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {2, 8}, {2, 16}, {3, 1}, {3, 2}, {3, 4}, {3, 8}, {4, 8}, {4, 16}, {6, 8}, {6, 16}}
	for _, k := range kinds {
		for _, interlaced := range []bool{false, true} {
			hd := pngHeader{w: 13, h: 11, colour: k[0], depth: int(k[1]), interlaced: interlaced}
			s := pngSpec{w: 13, h: 11, colour: k[0], depth: k[1], interlaced: interlaced, rows: rows(hd, k[0]+k[1]), idatSplits: 3}
			if k[0] == pngPalette {
				s.plte = []byte{10, 20, 30, 200, 100, 50, 0, 255, 0}[:3*min(3, 1<<k[1])] // short: indices past it are black
			}
			data := s.encode()
			if _, err := goPNG(data); err != nil {
				t.Fatalf("colour %d depth %d: the test's own file: %v", k[0], k[1], err)
			}
			comparePNG(t, "colour/depth "+string(rune('0'+k[0]))+"/"+string(rune('0'+k[1]/2)), data)
		}
	}

	good := pngSpec{w: 6, h: 4, depth: 8, colour: pngRGB}
	good.rows = rows(pngHeader{w: 6, h: 4, depth: 8, colour: pngRGB}, 9)
	whole := good.encode()
	short := good
	short.rows = good.rows[:len(good.rows)-5]
	long := good
	long.rows = append(append([]byte{}, good.rows...), 1, 2, 3)
	badFilter := good
	badFilter.rows = append([]byte{7}, good.rows[1:]...)
	noEnd := good
	noEnd.noIEND = true
	dict := good
	dict.zdata = []byte{0x78, 0x20, 0, 0, 0, 1, 3, 0} // FDICT set: a preset dictionary
	garbled := good
	garbled.zdata = []byte{0x78, 0x9c, 0xff, 0xff, 0xff, 0xff}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(good.rows)
	zw.Close()
	unended := good
	unended.zdata = z.Bytes()[:z.Len()-4] // every pixel, no checksum
	badCRC := append([]byte{}, whole...)
	badCRC[len(badCRC)-20] ^= 1 // inside the IDAT chunk
	for _, c := range []struct {
		name, data, want string
	}{
		{"cut in its pixel data", string(whole[:len(whole)-30]), "truncated image"},
		{"no IEND", string(noEnd.encode()), "truncated image"},
		{"short of pixel data", string(short.encode()), "corrupt image: png: invalid format: not enough pixel data"},
		{"more pixel data than the image", string(long.encode()), "corrupt image: png: invalid format: too much pixel data"},
		{"bad filter byte", string(badFilter.encode()), "corrupt image: png: invalid format: bad filter type"},
		{"a preset dictionary", string(dict.encode()), "corrupt image: png: invalid format: zlib: needs a preset dictionary"},
		{"a zlib stream without its end", string(unended.encode()), "corrupt image: png: invalid format: the zlib stream does not end after the pixel data"},
		{"a garbled zlib stream", string(garbled.encode()), "corrupt image: png: invalid format: zlib: invalid block type"},
		{"a flipped bit", string(badCRC), "corrupt image: png: invalid format:"},
		{"IDAT before IHDR", string(whole[:8]) + string(whole[33:]), "corrupt image: png: invalid format: chunk out of order"},
		{"a damaged header claiming 10^10 pixels", string(whole[:16]) + "\x00\x01\x86\xa0\x00\x01\x86\xa0" + string(whole[24:]), "corrupt image: png: invalid format: invalid checksum"},
	} {
		_, err := Decode(strings.NewReader(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if _, gerr := goPNG([]byte(c.data)); gerr == nil {
			t.Errorf("%s: image/png decodes it", c.name)
		}
	}
	// Bytes after the zlib stream's end are ignored, as PIL ignores them.
	trailing := good
	trailing.extraIDAT = []byte("garbage")
	if m, err := Decode(bytes.NewReader(trailing.encode())); err != nil || m.W != 6 {
		t.Errorf("garbage IDAT after the image: %v", err)
	}
}

// A 16-bit grey mask keeps its samples with a tRNS chunk too: PIL clips
// them at 255 (image/png gave such a file as 16-bit RGBA, its high bytes).
func TestPNGGrey16Transparency(t *testing.T) {
	s := pngSpec{w: 2, h: 1, depth: 16, colour: pngGrey, rows: []byte{0, 0, 200, 0xff, 0xff}, trns: []byte{0, 0}}
	img, _, err := decodeAny(bytes.NewReader(s.encode()), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray16)
	if !ok || g.Gray16At(0, 0).Y != 200 || g.Gray16At(1, 0).Y != 0xffff {
		t.Fatalf("got %T %v", img, img)
	}
}
