package authorship

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"io"

	"madclip/imaging"
)

const pngSignature = "\x89PNG\r\n\x1a\n"

// pngHead is the signature and the header chunk (IHDR, 13 bytes of data),
// after which the mark goes: PNG requires IHDR first and allows text
// chunks anywhere before the image data.
const pngHead = len(pngSignature) + 4 + 4 + 13 + 4

// ScanName is the mark of a synthetic scan (madclip synth): data to score,
// unlike the pictures madclip draws, which carry Name.
const ScanName = Name + " synth"

// pngText is the tEXt chunk's data: keyword, NUL, text.
func pngText(mark string) string { return "Software\x00" + mark }

// EncodePNG writes img to w as a PNG (imaging.EncodePNG's) that carries
// madclip's mark.
func EncodePNG(w io.Writer, img image.Image) error {
	return MarkPNG(w, func(w io.Writer) error { return imaging.EncodePNG(w, img) })
}

// EncodeJPEG writes img to w as a JPEG that carries madclip's mark.
func EncodeJPEG(w io.Writer, img image.Image, o *jpeg.Options) error {
	return MarkJPEG(w, func(w io.Writer) error { return jpeg.Encode(w, img, o) })
}

// EncodeScanPNG writes the synthetic scan img to w as a PNG marked as one.
func EncodeScanPNG(w io.Writer, img image.Image) error {
	return markPNG(w, ScanName, func(w io.Writer) error { return imaging.EncodePNG(w, img) })
}

// EncodeScanJPEG writes the synthetic scan img to w as a JPEG marked as
// one.
func EncodeScanJPEG(w io.Writer, img image.Image, o *jpeg.Options) error {
	return markJPEG(w, ScanName, func(w io.Writer) error { return jpeg.Encode(w, img, o) })
}

// MarkPNG runs write, which writes one PNG, through a writer that adds
// madclip's text chunk after the PNG's header chunk. It fails if write
// wrote something that does not start as a PNG does.
func MarkPNG(w io.Writer, write func(io.Writer) error) error { return markPNG(w, Name, write) }

func markPNG(w io.Writer, mark string, write func(io.Writer) error) error {
	text := pngText(mark)
	chunk := make([]byte, 0, 12+len(text))
	chunk = binary.BigEndian.AppendUint32(chunk, uint32(len(text)))
	chunk = append(chunk, "tEXt"+text...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	return insertAfter(w, pngHead, chunk, func(head []byte) bool {
		return string(head[:8]) == pngSignature && binary.BigEndian.Uint32(head[8:]) == 13 && string(head[12:16]) == "IHDR"
	}, "PNG", write)
}

// MarkJPEG runs write, which writes one JPEG, through a writer that adds
// madclip's comment segment right after the start-of-image marker.
func MarkJPEG(w io.Writer, write func(io.Writer) error) error { return markJPEG(w, Name, write) }

func markJPEG(w io.Writer, mark string, write func(io.Writer) error) error {
	seg := []byte{0xff, 0xfe, 0, byte(2 + len(mark))}
	seg = append(seg, mark...)
	return insertAfter(w, 2, seg, func(head []byte) bool { return head[0] == 0xff && head[1] == 0xd8 }, "JPEG", write)
}

// insertAfter passes what write writes on to w, with extra inserted after
// the first n bytes once valid accepts them.
func insertAfter(w io.Writer, n int, extra []byte, valid func([]byte) bool, format string, write func(io.Writer) error) error {
	m := &inserter{w: w, n: n, extra: extra, valid: valid, format: format}
	if err := write(m); err != nil {
		return err
	}
	if !m.done {
		return errors.New("the encoder wrote less than a " + format + " header")
	}
	return nil
}

type inserter struct {
	w      io.Writer
	n      int
	head   []byte
	extra  []byte
	valid  func([]byte) bool
	format string
	done   bool
}

func (m *inserter) Write(p []byte) (int, error) {
	if m.done {
		return m.w.Write(p)
	}
	take := min(m.n-len(m.head), len(p))
	m.head = append(m.head, p[:take]...)
	if len(m.head) < m.n {
		return len(p), nil
	}
	if !m.valid(m.head) {
		return 0, errors.New("the encoder's output does not start as a " + m.format + " does")
	}
	m.done = true
	for _, b := range [][]byte{m.head, m.extra, p[take:]} {
		if _, err := m.w.Write(b); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// imageKind is what an image's mark says it is: a picture madclip drew
// (picture), a synthetic scan, or not madclip's (None).
func imageKind(mark string, picture Kind) Kind {
	switch mark {
	case Name:
		return picture
	case ScanName:
		return Scan
	}
	return None
}

// pngMark walks the chunks before the image data, looking for madclip's
// text chunk, and returns its text ("" for none).
func pngMark(r *bufio.Reader) string {
	if _, err := r.Discard(len(pngSignature)); err != nil {
		return ""
	}
	for range 64 {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return ""
		}
		n, typ := binary.BigEndian.Uint32(hdr[:4]), string(hdr[4:])
		if typ == "IDAT" || typ == "IEND" {
			return ""
		}
		if typ == "tEXt" && (n == uint32(len(pngText(Name))) || n == uint32(len(pngText(ScanName)))) {
			data := make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return ""
			}
			for _, mark := range []string{Name, ScanName} {
				if string(data) == pngText(mark) {
					return mark
				}
			}
			n = 0
		}
		if _, err := r.Discard(int(min(n, 1<<30)) + 4); err != nil {
			return ""
		}
	}
	return ""
}

// jpegMark walks the segments before the scan data, looking for madclip's
// comment, and returns it ("" for none).
func jpegMark(r *bufio.Reader) string {
	if _, err := r.Discard(2); err != nil {
		return ""
	}
	for range 64 {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[0] != 0xff {
			return ""
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if hdr[1] == 0xda || n < 2 { // start of scan, or a broken length
			return ""
		}
		data := make([]byte, n-2)
		if _, err := io.ReadFull(r, data); err != nil {
			return ""
		}
		if hdr[1] == 0xfe && (string(data) == Name || string(data) == ScanName) {
			return string(data)
		}
	}
	return ""
}
