// Package imaging decodes scans and resizes them exactly as PIL does, so
// that preprocessing matches the Python pipelines CLIP and MadCLIP were
// trained and evaluated with. PNG is decoded here with zlib, JPEG by
// libjpeg-turbo (the libraries PIL uses); images are 8-bit RGB.
package imaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"  // headers only; pixels go through libjpeg-turbo
	_ "image/png" // headers only, for Size; pixels go through decodePNG
	"io"
	"math"

	"madclip/internal/memlimit"
	"madclip/internal/regularfile"
)

// RGB is an 8-bit RGB image, row-major, 3 bytes a pixel.
type RGB struct {
	W, H int
	Pix  []byte
}

// NewRGB returns a black image.
func NewRGB(w, h int) *RGB { return &RGB{W: w, H: h, Pix: make([]byte, 3*w*h)} }

// At returns the pixel at (x, y).
func (m *RGB) At(x, y int) (r, g, b byte) {
	i := 3 * (y*m.W + x)
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// Load decodes a PNG or JPEG file (grey, colour, palette or with alpha; 8 or
// 16 bits) into RGB: grey is replicated, alpha dropped, 16-bit values scaled
// to 8 bits. Errors name the file and say what is wrong with it.
func Load(path string) (*RGB, error) { return LoadLimit(path, Limits{}) }

// DefaultMaxPixels is the largest image (width × height) decoded unless a
// caller raises it: PIL's decompression-bomb limit. A header claiming more
// is refused before any pixel memory is allocated.
const DefaultMaxPixels = 178956970

// Limits says what a decode accepts. The zero value is the default.
type Limits struct {
	// MaxPixels is the largest width × height decoded (DefaultMaxPixels
	// when ≤ 0).
	MaxPixels int64
	// DamagedJPEG accepts a JPEG whose compressed data libjpeg finds
	// damaged (a premature end of a data segment, a bad Huffman code, a
	// lost restart marker), decoding it as PIL does: what cannot be decoded
	// becomes flat grey. By default such a file is refused, since its
	// score would be that of a partly invented image.
	DamagedJPEG bool
	// Reserve, when set, is called with an image's size once its header
	// has been read and before its pixels are decoded; the function it
	// returns is called when decoding ends. A caller decoding several
	// images at once bounds their memory with it (dataset.Decode).
	Reserve func(w, h int) (release func())
}

// reserve calls Reserve, if set, for a w×h image.
func (l Limits) reserve(w, h int) (release func()) {
	if l.Reserve == nil {
		return func() {}
	}
	return l.Reserve(w, h)
}

func (l Limits) maxPixels() int64 {
	if l.MaxPixels <= 0 {
		return DefaultMaxPixels
	}
	return l.MaxPixels
}

// Allows refuses an image of w×h pixels over the pixel limit.
func (l Limits) Allows(w, h int) error {
	if px := int64(w) * int64(h); px > l.maxPixels() {
		return fmt.Errorf("the image claims %d×%d pixels, over the limit of %d (raise it with --max-pixels)", w, h, l.maxPixels())
	}
	return nil
}

// LoadLimit is Load within the limits l.
func LoadLimit(path string, l Limits) (*RGB, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := decodeLimit(bufio.NewReader(f), l)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Size reads only the header of the image at path: its width and height.
func Size(path string) (w, h int, err error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		return 0, 0, fmt.Errorf("%s: empty file, not an image", path)
	}
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: not a readable PNG or JPEG image: %w", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// Decode reads a PNG or JPEG stream within the default Limits.
func Decode(r io.Reader) (*RGB, error) { return decodeLimit(r, Limits{}) }

func decodeLimit(r io.Reader, l Limits) (*RGB, error) {
	img, rgb, err := decodeAny(r, l)
	if err != nil || rgb != nil {
		return rgb, err
	}
	return FromImage(img), nil
}

// CheckMaskSize reads only the header of the mask at path and refuses it
// unless it is w×h, the size of its scan (named for the message).
func CheckMaskSize(path, scan string, w, h int) error {
	mw, mh, err := Size(path)
	if err != nil {
		return err
	}
	if mw != w || mh != h {
		return fmt.Errorf("%s: mask is %dx%d, its scan %s is %dx%d", path, mw, mh, scan, w, h)
	}
	return nil
}

// LoadMask decodes the ground-truth mask at path, which must be w×h (the
// size of its scan, named for the message), into grey as PIL's
// Image.open(path).convert("L") does: colour by luma, palette colours
// whatever their transparency, and 16-bit grey clipped at 255 (PIL opens
// it as 32-bit integers), so masks stored as 0/255 and as 0/65535 in 16
// bits both mark their region.
func LoadMask(path, scan string, w, h int) (*Gray, error) {
	// The header first: a mask of another size is named as such, not as an
	// image over the pixel limit.
	if err := CheckMaskSize(path, scan, w, h); err != nil {
		return nil, err
	}
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, rgb, err := decodeAny(bufio.NewReader(f), Limits{MaxPixels: int64(w) * int64(h)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if g16, ok := img.(*image.Gray16); ok {
		b := g16.Bounds()
		g := &Gray{W: b.Dx(), H: b.Dy(), Pix: make([]byte, b.Dx()*b.Dy())}
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				g.Pix[i] = byte(min(g16.Gray16At(x, y).Y, 255))
				i++
			}
		}
		return g, nil
	}
	if rgb == nil {
		rgb = FromImage(img)
	}
	if rgb.W != w || rgb.H != h {
		return nil, fmt.Errorf("%s: mask decodes to %dx%d, its scan %s is %dx%d", path, rgb.W, rgb.H, scan, w, h)
	}
	return rgb.Luma(), nil
}

// decodeAny decodes a PNG (to RGB, or 16-bit grey as image.Gray16) or a
// JPEG (to RGB, through libjpeg-turbo) within the limits l.
func decodeAny(r io.Reader, l Limits) (image.Image, *RGB, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(8)
	switch {
	case bytes.HasPrefix(head, []byte(pngSignature)):
		rgb, g16, err := decodePNG(br, l)
		var limit pngLimitError
		switch {
		case errors.As(err, &limit):
			return nil, nil, limit.error
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			return nil, nil, fmt.Errorf("truncated image: %w", err)
		case err != nil:
			return nil, nil, fmt.Errorf("corrupt image: %w", err)
		case g16 != nil:
			return g16, nil, nil
		}
		return nil, rgb, nil
	case bytes.HasPrefix(head, []byte{0xff, 0xd8, 0xff}):
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, nil, err
		}
		if l.Reserve != nil {
			if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err == nil && l.Allows(cfg.Width, cfg.Height) == nil {
				defer l.reserve(cfg.Width, cfg.Height)()
			}
		}
		rgb, err := decodeJPEG(data, l.maxPixels(), l.DamagedJPEG)
		return nil, rgb, err
	case len(head) == 0:
		return nil, nil, errors.New("empty file, not an image")
	}
	return nil, nil, errors.New("not a PNG or JPEG image")
}

// DecodeBytes is about the most memory decoding a w×h image takes while it
// runs (a 16-bit RGBA PNG's inflated data, with a filter byte a row in each
// interlaced pass, and the RGB image): what callers decoding several images
// at once budget for.
func DecodeBytes(w, h int) int64 { return int64(w)*int64(h)*pngBytesPerPixel + 2*int64(h) }

// fitsMemory refuses an image whose decoding would need more memory than
// the process may use (the machine's, or its cgroup's limit), whatever
// --max-pixels allows: a Go program that runs out
// of memory ends with a stack dump, not an error.
func fitsMemory(w, h int, bytesPerPixel uint64) error {
	total := uint64(memlimit.Bytes())
	if total == 0 {
		return nil
	}
	// w and h are below 2³¹ (PNG) or 2¹⁶ (JPEG): their product fits, the
	// product times bytesPerPixel may not.
	if uint64(w)*uint64(h) > total/bytesPerPixel {
		need := float64(w) * float64(h) * float64(bytesPerPixel)
		return fmt.Errorf("the image claims %d×%d pixels; decoding it needs about %.1f GB, more than the %.1f GB of memory madclip may use here", w, h, need/1e9, float64(total)/1e9)
	}
	return nil
}

// FromImage converts any image.Image to 8-bit RGB.
func FromImage(img image.Image) *RGB {
	b := img.Bounds()
	m := NewRGB(b.Dx(), b.Dy())
	i := 0
	switch src := img.(type) {
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			at := src.PixOffset(b.Min.X, y)
			spread(m.Pix[3*(y-b.Min.Y)*b.Dx():], src.Pix[at:at+b.Dx()])
		}
	case *image.NRGBA: // alpha is dropped, as PIL's convert("RGB") does
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := src.NRGBAAt(x, y)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	case *image.YCbCr: // Go's JPEG decoder (madclip decodes JPEG with libjpeg-turbo)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := src.YCbCrAt(x, y)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				i += 3
			}
		}
	case *image.RGBA: // opaque PNGs
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := src.RGBAAt(x, y)
				if c.A == 255 {
					m.Pix[i], m.Pix[i+1], m.Pix[i+2] = c.R, c.G, c.B
				} else {
					n := color.NRGBAModel.Convert(c).(color.NRGBA)
					m.Pix[i], m.Pix[i+1], m.Pix[i+2] = n.R, n.G, n.B
				}
				i += 3
			}
		}
	case *image.Paletted: // PIL takes a palette entry's colour whatever its transparency (tRNS)
		var table [256][3]byte
		for k, c := range src.Palette {
			if k == len(table) {
				break
			}
			n, ok := c.(color.NRGBA) // Go's PNG decoder gives entries with tRNS alpha as NRGBA
			if !ok {
				n = color.NRGBAModel.Convert(c).(color.NRGBA)
			}
			table[k] = [3]byte{n.R, n.G, n.B}
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := table[src.ColorIndexAt(x, y)]
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = c[0], c[1], c[2]
				i += 3
			}
		}
	case *image.Gray16:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				v := byte(src.Gray16At(x, y).Y >> 8)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = v, v, v
				i += 3
			}
		}
	case *image.NRGBA64:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := src.NRGBA64At(x, y)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = byte(c.R>>8), byte(c.G>>8), byte(c.B>>8)
				i += 3
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = byte(c.R>>8), byte(c.G>>8), byte(c.B>>8)
				i += 3
			}
		}
	}
	return m
}

// Crop returns the w×h region whose top-left corner is (x, y).
func (m *RGB) Crop(x, y, w, h int) (*RGB, error) {
	if x < 0 || y < 0 || w <= 0 || h <= 0 || x+w > m.W || y+h > m.H {
		return nil, fmt.Errorf("crop %dx%d at (%d,%d) outside a %dx%d image", w, h, x, y, m.W, m.H)
	}
	out := NewRGB(w, h)
	for r := range h {
		copy(out.Pix[3*r*w:3*(r+1)*w], m.Pix[3*((y+r)*m.W+x):])
	}
	return out, nil
}

// CenterCrop crops the central w×h region (CenterRect).
func (m *RGB) CenterCrop(w, h int) (*RGB, error) {
	r := CenterRect(m.W, m.H, w, h)
	return m.Crop(r.Min.X, r.Min.Y, w, h)
}

// CenterRect is the central w×h region of a W×H image, placed as
// torchvision places it (offsets rounded half to even).
func CenterRect(W, H, w, h int) image.Rectangle {
	top := int(math.RoundToEven(float64(H-h) / 2))
	left := int(math.RoundToEven(float64(W-w) / 2))
	return image.Rect(left, top, left+w, top+h)
}

// CHW returns the image as float32 planes [3, H, W] in [0, 1].
func (m *RGB) CHW() []float32 {
	n := m.W * m.H
	out := make([]float32, 3*n)
	r, g, b := out[:n], out[n:2*n], out[2*n:]
	for i := range n {
		p := m.Pix[3*i : 3*i+3]
		r[i], g[i], b[i] = float32(p[0])/255, float32(p[1])/255, float32(p[2])/255
	}
	return out
}

// Gray is an 8-bit single-channel image, row-major.
type Gray struct {
	W, H int
	Pix  []byte
}

// Luma converts the image to grey as PIL's convert("L") does:
// L = (19595·R + 38470·G + 7471·B + 2^15) >> 16, i.e. ITU-R 601-2 luma
// (299/1000, 587/1000, 114/1000) in PIL's fixed point. Grey images come
// back unchanged (their replicated channels give the same value).
func (m *RGB) Luma() *Gray {
	g := &Gray{W: m.W, H: m.H, Pix: make([]byte, m.W*m.H)}
	for i := range g.Pix {
		r, gr, b := uint32(m.Pix[3*i]), uint32(m.Pix[3*i+1]), uint32(m.Pix[3*i+2])
		g.Pix[i] = byte((r*19595 + gr*38470 + b*7471 + 0x8000) >> 16)
	}
	return g
}

// Image returns the image as an image.Gray sharing its pixels.
func (m *Gray) Image() *image.Gray {
	return &image.Gray{Pix: m.Pix, Stride: m.W, Rect: image.Rect(0, 0, m.W, m.H)}
}

// nearestIndex is PIL's nearest-neighbour source index for each of m
// outputs from n inputs: the source coordinate starts at half a step and
// accumulates the step (n/m) in double precision, truncated, so that at
// exact integers rounding error may pick the previous pixel as PIL does.
func nearestIndex(n, m int) []int {
	step := float64(n) / float64(m)
	idx := make([]int, m)
	x := step * 0.5
	for i := range idx {
		idx[i] = min(int(x), n-1)
		x += step
	}
	return idx
}

// ResizeNearest scales the image to w×h as PIL.Image.resize(size,
// Image.NEAREST) does, pixel for pixel.
func (m *Gray) ResizeNearest(w, h int) *Gray {
	out := &Gray{W: w, H: h, Pix: make([]byte, w*h)}
	xs, ys := nearestIndex(m.W, w), nearestIndex(m.H, h)
	for y, yi := range ys {
		row := m.Pix[yi*m.W:]
		dst := out.Pix[y*w:]
		for x, xi := range xs {
			dst[x] = row[xi]
		}
	}
	return out
}
