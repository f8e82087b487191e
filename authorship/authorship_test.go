package authorship_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"madclip/authorship"
	"madclip/imaging"
	"madclip/internal/reftest"
)

func gradient() *image.Gray {
	img := image.NewGray(image.Rect(0, 0, 37, 23))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	return img
}

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func written(t *testing.T, p string) bool {
	t.Helper()
	ok, err := authorship.Written(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return ok
}

// pyCheck runs a Python snippet on path and returns what it prints.
func pyCheck(t *testing.T, modules, code, path string) string {
	t.Helper()
	py := reftest.Python(t, modules)
	out, err := exec.Command(py, "-c", "import sys, "+modules+"\n"+code, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPNG: the marked PNG decodes to the same pixels, PIL reads the mark as
// the Software text, and only the marked file is recognised.
func TestPNG(t *testing.T) {
	img := gradient()
	var marked, plain bytes.Buffer
	if err := authorship.EncodePNG(&marked, img); err != nil {
		t.Fatal(err)
	}
	if err := imaging.EncodePNG(&plain, img); err != nil {
		t.Fatal(err)
	}
	if marked.Len() != plain.Len()+12+len("Software\x00madclip") {
		t.Errorf("marked PNG is %d bytes, plain %d: want exactly one tEXt chunk more", marked.Len(), plain.Len())
	}
	back, err := png.Decode(bytes.NewReader(marked.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := back.(*image.Gray); !ok || !bytes.Equal(g.Pix, img.Pix) {
		t.Error("the marked PNG decodes to other pixels")
	}
	mp := write(t, "m.png", marked.Bytes())
	if !written(t, mp) || written(t, write(t, "p.png", plain.Bytes())) {
		t.Error("the marked PNG is not recognised, or the plain one is")
	}
	if got := pyCheck(t, "PIL.Image", "im = PIL.Image.open(sys.argv[1]); im.load(); print(im.info.get('Software'), im.size)", mp); got != "madclip (37, 23)" {
		t.Errorf("PIL reads %q", got)
	}
	// A writer that writes no PNG is an error, not a corrupt file.
	err = authorship.MarkPNG(io.Discard, func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Repeat("not a png at all ", 4))
		return err
	})
	if err == nil {
		t.Error("MarkPNG accepted output that is no PNG")
	}
	if authorship.MarkPNG(io.Discard, func(io.Writer) error { return nil }) == nil {
		t.Error("MarkPNG accepted an empty output")
	}
	// Another text chunk before ours, and a PNG cut short, are handled.
	b := marked.Bytes()
	other := append([]byte{0, 0, 0, 3}, "tEXtabc"...)
	other = append(other, 0, 0, 0, 0) // the CRC is not checked here
	moved := append(append(append([]byte{}, b[:33]...), other...), b[33:]...)
	if !written(t, write(t, "o.png", moved)) {
		t.Error("the mark after another text chunk is not found")
	}
	if written(t, write(t, "cut.png", b[:40])) {
		t.Error("a PNG cut inside the mark counts as madclip's")
	}
}

// TestJPEG: the comment segment is where PIL finds it, and Go decodes the
// same image.
func TestJPEG(t *testing.T) {
	img := gradient()
	var marked, plain bytes.Buffer
	if err := authorship.EncodeJPEG(&marked, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	jpeg.Encode(&plain, img, &jpeg.Options{Quality: 90})
	a, err := jpeg.Decode(bytes.NewReader(marked.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := jpeg.Decode(bytes.NewReader(plain.Bytes()))
	if !bytes.Equal(a.(*image.Gray).Pix, b.(*image.Gray).Pix) {
		t.Error("the mark changed the decoded pixels")
	}
	mp := write(t, "m.jpg", marked.Bytes())
	if !written(t, mp) || written(t, write(t, "p.jpg", plain.Bytes())) {
		t.Error("the marked JPEG is not recognised, or the plain one is")
	}
	if got := pyCheck(t, "PIL.Image", "im = PIL.Image.open(sys.argv[1]); im.load(); print(im.info.get('comment'))", mp); got != "b'madclip'" {
		t.Errorf("PIL reads the comment as %q", got)
	}
}

// TestNPY: NumPy reads the header (in madclip's key order) as the shape and
// dtype written; a file NumPy writes is not taken for madclip's.
func TestNPY(t *testing.T) {
	for _, shape := range [][]int{{3, 5}, {7}, {2, 3, 4}} {
		h := authorship.NPYHeader(shape...)
		if len(h)%64 != 0 || h[len(h)-1] != '\n' || int(binary.LittleEndian.Uint16(h[8:])) != len(h)-10 {
			t.Errorf("%v: header of %d bytes, length field %d", shape, len(h), binary.LittleEndian.Uint16(h[8:]))
		}
		n := 1
		for _, s := range shape {
			n *= s
		}
		data := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(data[4*i:], uint32(0x3f800000)) // 1.0
		}
		p := write(t, "a.npy", append(h, data...))
		if !written(t, p) {
			t.Errorf("%v: not recognised", shape)
		}
		got := pyCheck(t, "numpy", "a = numpy.load(sys.argv[1]); print(a.dtype, a.shape, float(a.sum()))", p)
		dims := make([]string, len(shape))
		for i, d := range shape {
			dims[i] = fmt.Sprint(d)
		}
		tuple := strings.Join(dims, ", ")
		if len(shape) == 1 {
			tuple += ","
		}
		if want := fmt.Sprintf("float32 (%s) %.1f", tuple, float64(n)); got != want {
			t.Errorf("%v: numpy reads %q, want %q", shape, got, want)
		}
	}
	np := filepath.Join(t.TempDir(), "np.npy")
	pyCheck(t, "numpy", "numpy.save(sys.argv[1], numpy.zeros((3, 5), numpy.float32))", np)
	if written(t, np) {
		t.Error("a file NumPy wrote is taken for madclip's")
	}
}

// TestZip: the comment leaves the archive readable, with its entries.
func TestZip(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, _ := zw.Create("archive/data.pkl")
	f.Write([]byte("payload"))
	zw.Close()
	marked, err := authorship.MarkZip(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(marked), int64(len(marked)))
	if err != nil || zr.Comment != "madclip" || len(zr.File) != 1 {
		t.Fatalf("reading the marked zip: %v (comment %q)", err, zr.Comment)
	}
	if !written(t, write(t, "m.pth", marked)) || written(t, write(t, "p.pth", buf.Bytes())) {
		t.Error("the marked zip is not recognised, or the plain one is")
	}
	if _, err := authorship.MarkZip(marked); err == nil {
		t.Error("MarkZip marked an archive that already has a comment")
	}
	if _, err := authorship.MarkZip([]byte("PK")); err == nil {
		t.Error("MarkZip accepted a fragment")
	}
}

// TestSafetensorsAndJSON: checkpoints and converted weights by their
// metadata, reports and bench results by their version key.
func TestSafetensorsAndJSON(t *testing.T) {
	st := func(header string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		return append(append(b, header...), 0, 0, 0, 0)
	}
	tensor := `"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	for _, c := range []struct {
		name, body string
		want       bool
	}{
		{"ck.safetensors", string(st(`{"__metadata__":{"madclip":"{}","format":"pt"},` + tensor + `}`)), true},
		{"w.safetensors", string(st(`{"__metadata__":{"converted_by":"madclip"},` + tensor + `}`)), true},
		{"hf.safetensors", string(st(`{"__metadata__":{"format":"pt"},` + tensor + `}`)), false},
		{"bare.safetensors", string(st(`{` + tensor + `}`)), false},
		{"report.json", `{"dataset": "Brain", "provenance": {"madclip_version": "0.1"}}`, true},
		{"bench.json", `[{"provenance": {"madclip_version": "0.1"}}, {}]`, true},
		{"top.json", `{"madclip_version": "0.1"}`, true},
		{"deep.json", `{"a": {"b": {"madclip_version": "0.1"}}}`, false},
		{"string.json", `{"note": "madclip_version"}`, false},
		{"empty-version.json", `{"madclip_version": ""}`, false},
		{"list.json", `[]`, false},
		{"broken.json", `{"madclip_version": "0.1"`, false},
		{"lines.json", "{\"madclip_version\": \"0.1\"}\n{\"precious\": 1}\n", false},
		{"trailing.json", `{"madclip_version": "0.1"} and my notes`, false},
		{"newline.json", "{\"madclip_version\": \"0.1\"}\n", true},
		{"notes.txt", "madclip_version\n", false},
		{"empty", "", true},
	} {
		if got := written(t, write(t, c.name, []byte(c.body))); got != c.want {
			t.Errorf("%s: Written %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := authorship.Written(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file gave no error")
	}
	fifo := filepath.Join(t.TempDir(), "pipe.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := authorship.Written(fifo); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("a named pipe: %v", err) // and no wait for a writer
	}
	if _, err := authorship.Refusal(write(t, "x.png", []byte("\x89PNG\r\n\x1a\n")), authorship.None); err == nil || !strings.Contains(err.Error(), "madclip did not write it") {
		t.Errorf("Refusal: %v", err)
	}
}

// TestKinds: Identify tells what each marked file holds, and Refusal lets
// an output replace only its own kind (or an empty file): a checkpoint is
// never lost to a report given its name by mistake.
func TestKinds(t *testing.T) {
	st := func(header string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		return append(append(b, header...), 0, 0, 0, 0)
	}
	tensor := `"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	var pngBuf, jpgBuf, zipBuf, scanPNG, scanJPG bytes.Buffer
	if err := authorship.EncodePNG(&pngBuf, gradient()); err != nil {
		t.Fatal(err)
	}
	// A synthetic scan is data, not a picture madclip drew: its own kind,
	// in either format.
	if err := authorship.EncodeScanPNG(&scanPNG, gradient()); err != nil {
		t.Fatal(err)
	}
	if err := authorship.EncodeScanJPEG(&scanJPG, gradient(), nil); err != nil {
		t.Fatal(err)
	}
	if k, err := authorship.Identify(write(t, "scan2.jpg", scanJPG.Bytes())); err != nil || k != authorship.Scan {
		t.Errorf("synthetic JPEG scan: %q %v", k, err)
	}
	if err := authorship.EncodeJPEG(&jpgBuf, gradient(), nil); err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(&zipBuf)
	zw.Create("archive/data.pkl")
	zw.Close()
	archive, err := authorship.MarkZip(zipBuf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	npy := append([]byte(authorship.NPYHeader(1)), 0, 0, 0, 0)
	files := map[authorship.Kind]string{
		authorship.Checkpoint: write(t, "ck.safetensors", st(`{"__metadata__":{"madclip":"{}","written_by":"madclip"},`+tensor+`}`)),
		authorship.Weights:    write(t, "w.safetensors", st(`{"__metadata__":{"written_by":"madclip"},`+tensor+`}`)),
		authorship.JSON:       write(t, "report.json", []byte(`{"madclip_version": "0.1"}`)),
		authorship.PNG:        write(t, "heat.png", pngBuf.Bytes()),
		authorship.Scan:       write(t, "synth.png", scanPNG.Bytes()),
		authorship.JPEG:       write(t, "scan.jpg", jpgBuf.Bytes()),
		authorship.Archive:    write(t, "ck.pth", archive),
		authorship.NPY:        write(t, "map.npy", npy),
		authorship.Empty:      write(t, "empty", nil),
		authorship.None:       write(t, "hf.safetensors", st(`{"__metadata__":{"format":"pt"},`+tensor+`}`)),
	}
	for want, p := range files {
		if got, err := authorship.Identify(p); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", filepath.Base(p), got, err, want)
		}
	}
	for have, p := range files {
		for _, want := range []authorship.Kind{authorship.Checkpoint, authorship.JSON, authorship.PNG, authorship.None} {
			_, err := authorship.Refusal(p, want)
			switch {
			case have == authorship.None:
				if !errors.Is(err, authorship.ErrNotWritten) {
					t.Errorf("%s for %q: %v, want ErrNotWritten", filepath.Base(p), want, err)
				}
			case have == authorship.Empty || want == authorship.None || want == have:
				if err != nil {
					t.Errorf("%s for %q: %v, want it replaceable", filepath.Base(p), want, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("it holds %s; refusing to replace it with %s", have, want)) {
					t.Errorf("%s for %q: %v, want a refusal naming both kinds", filepath.Base(p), want, err)
				}
			}
		}
	}
}

// A file of madclip's that its owner made read-only is not replaced: the
// rename would succeed where cp fails. As root, the check runs as nobody
// (root may write anything, as cp does).
func TestRefusalWriteProtected(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // the test's own folder, for nobody to pass
	path := filepath.Join(dir, "report.json")
	if err := os.WriteFile(path, []byte(`{"madclip_version": "x"}`), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := authorship.Refusal(path, authorship.JSON); os.Geteuid() != 0 && (err == nil || !strings.Contains(err.Error(), "write-protected")) {
		t.Errorf("a read-only file of one's own: %v", err)
	} else if os.Geteuid() == 0 && err != nil {
		t.Errorf("root may replace a read-only file: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	// As nobody (real and effective, as access(2) checks the real id),
	// keeping root as the saved id to come back.
	if err := syscall.Setresuid(65534, 65534, 0); err != nil {
		t.Skip("cannot become nobody:", err)
	}
	_, err := authorship.Refusal(path, authorship.JSON)
	if e := syscall.Setresuid(0, 0, 0); e != nil {
		panic(e) // the rest of the tests would run as nobody
	}
	if err == nil || err.Error() != "it is write-protected; refusing to replace it (make it writable, remove it, or choose another name)" {
		t.Errorf("another user's read-only file: %v", err)
	}
	os.Chmod(path, 0o666)
	if _, err := authorship.Refusal(path, authorship.JSON); err != nil {
		t.Errorf("a writable file: %v", err)
	}
}
