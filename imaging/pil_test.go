package imaging

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"madclip/internal/reftest"
)

// runPIL runs a Python script with PIL in dir (its first argument).
func runPIL(t *testing.T, dir, script string) {
	t.Helper()
	py := reftest.Python(t, "PIL, numpy")
	cmd := exec.Command(py, "-c", script, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// Masks as the authors' code reads them: PIL's convert("L") from every
// mode a mask may come in, then resize(..., NEAREST) to 240 (and other
// sizes) — byte for byte, including the rows and columns where PIL's
// accumulated source coordinate differs from the textbook formula.
func TestMaskPipelineMatchesPIL(t *testing.T) {
	dir := t.TempDir()
	runPIL(t, dir, `
import sys, itertools
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(3)
i = 0
for (w, h), mode in itertools.product([(64, 64), (256, 256), (512, 512), (97, 61), (300, 200)], ["L", "RGB", "RGBA", "P", "LA", "I;16", "PT"]):
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    if mode == "L":
        im = im.convert("L")
    elif mode == "RGBA":
        im = Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (h, w), dtype=np.uint8)]))
    elif mode == "P":
        im = im.quantize(64)
    elif mode == "LA":
        im = Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA")
    elif mode == "I;16":  # 16-bit grey: PIL opens it as "I" and clips at 255
        v = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        v[: h // 2] = rng.choice([0, 1, 127, 128, 255, 256, 65535], (h // 2, w))
        im = Image.fromarray(v, "I;16")
    elif mode == "PT":  # a palette with transparency: PIL keeps each entry's colour
        im = im.quantize(64)
        im.info["transparency"] = bytes(rng.integers(0, 256, 64, dtype=np.uint8))
        im.save(f"{d}/m{i}.png", transparency=im.info["transparency"])
    if mode != "PT":
        im.save(f"{d}/m{i}.png")
    for s in [(240, 240), (17, 23)]:
        out = np.asarray(Image.open(f"{d}/m{i}.png").convert("L").resize(s, Image.NEAREST))
        out.tofile(f"{d}/m{i}_{s[0]}x{s[1]}.raw")
    i += 1
# A pure red mask: grey 76, so not an anomaly after > 0.5.
Image.new("RGB", (8, 8), (255, 0, 0)).save(f"{d}/red.png")
`)
	const cases = 5 * 7
	files, _ := filepath.Glob(filepath.Join(dir, "m*_240x240.raw"))
	if len(files) != cases {
		t.Fatalf("%d reference masks", len(files))
	}
	for i := range cases {
		src := filepath.Join(dir, fmt.Sprintf("m%d.png", i))
		w, h, err := Size(src)
		if err != nil {
			t.Fatal(err)
		}
		m, err := LoadMask(src, "scan.png", w, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range [][2]int{{240, 240}, {17, 23}} {
			want, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("m%d_%dx%d.raw", i, s[0], s[1])))
			if err != nil {
				t.Fatal(err)
			}
			got := m.ResizeNearest(s[0], s[1])
			if !bytes.Equal(got.Pix, want) {
				diff := 0
				for j := range want {
					if got.Pix[j] != want[j] {
						diff++
					}
				}
				t.Errorf("mask %d (%dx%d) to %v: %d of %d pixels differ from PIL", i, m.W, m.H, s, diff, len(want))
			}
		}
	}
	red, err := LoadMask(filepath.Join(dir, "red.png"), "scan.png", 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if v := red.Pix[0]; v != 76 {
		t.Errorf("pure red is grey %d, want 76", v)
	}
}

// Scans as the authors' code reads them: PIL's convert("RGB") from every
// mode a PNG scan may come in, byte for byte — a palette with transparency
// keeps each entry's colour, alpha is dropped, not composited; an index
// past a short palette reads black, as in Pillow 11 (the authors' code
// pins scikit-learn 1.6.1, of 2025, and leaves Pillow to pip's newest).
// (16-bit grey is the one deliberate difference: scaled, not clipped; see
// TestDecodeKinds.)
func TestScanModesMatchPIL(t *testing.T) {
	dir := t.TempDir()
	runPIL(t, dir, `
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(4)
h, w = 61, 97
rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
Image.fromarray(rgb).save(f"{d}/RGB.png")
Image.fromarray(rgb).convert("L").save(f"{d}/L.png")
Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (h, w), dtype=np.uint8)])).save(f"{d}/RGBA.png")
Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(f"{d}/LA.png")
Image.fromarray(rgb).quantize(200).save(f"{d}/P.png")
Image.fromarray(rgb).quantize(200).save(f"{d}/PT.png", transparency=bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
Image.fromarray(rgb).convert("1").save(f"{d}/1.png")
for name in ["RGB", "L", "RGBA", "LA", "P", "PT", "1"]:
    np.asarray(Image.open(f"{d}/{name}.png").convert("RGB")).tofile(f"{d}/{name}.raw")
# A palette shorter than the indices used (5 entries, indices to 255),
# with a short transparency table too. Pillow 11 reads an entry past the
# palette as black (Pillow 9.4 read entry i as grey (i, i, i)); the pixels
# are computed here from the palette padded with black, grey by PIL's
# L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, and compared with the
# installed Pillow's where it is 11 or later.
import struct, zlib, PIL
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
idx = rng.integers(0, 256, (h, w), dtype=np.uint8)
raw = b"".join(b"\0" + row.tobytes() for row in idx)
for name, extra in [("PS", b""), ("PST", chunk(b"tRNS", bytes([0, 100])))]:
    plte = rng.integers(0, 256, 15, dtype=np.uint8)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)) + chunk(b"gAMA", struct.pack(">I", 45455))
        + chunk(b"PLTE", bytes(plte)) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(f"{d}/{name}.png", "wb").write(png)
    pal = np.zeros((256, 3), np.int64)
    pal[:5] = plte.reshape(5, 3)
    rgb_want = pal[idx].astype(np.uint8)
    r, g, b = (pal[idx][..., i] for i in range(3))
    l_want = ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16).astype(np.uint8)
    if int(PIL.__version__.split(".")[0]) >= 11:
        im = Image.open(f"{d}/{name}.png")
        assert np.array_equal(np.asarray(im.convert("RGB")), rgb_want), f"{name}: Pillow {PIL.__version__} convert('RGB') differs from the black-padded palette"
        assert np.array_equal(np.asarray(im.convert("L")), l_want), f"{name}: Pillow {PIL.__version__} convert('L') differs"
    rgb_want.tofile(f"{d}/{name}.raw")
    l_want.tofile(f"{d}/{name}_L.raw")
`)
	for _, name := range []string{"PS", "PST"} { // as a mask: convert("L")
		m, err := LoadMask(filepath.Join(dir, name+".png"), "scan.png", 97, 61)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := os.ReadFile(filepath.Join(dir, name+"_L.raw")); !bytes.Equal(m.Pix, want) {
			t.Errorf("%s mask differs from PIL's convert(\"L\")", name)
		}
	}
	for _, name := range []string{"RGB", "L", "RGBA", "LA", "P", "PT", "1", "PS", "PST"} {
		m, err := Load(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, name+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Pix, want) {
			diff := 0
			for j := range want {
				if m.Pix[j] != want[j] {
					diff++
				}
			}
			t.Errorf("%s scan: %d of %d bytes differ from PIL's convert(\"RGB\")", name, diff, len(want))
		}
	}
}

// The textbook nearest formula int((y+0.5)·s) picks other source rows than
// PIL for 64/256/512 → 240; the accumulated coordinate does not.
func TestNearestIndexAccumulates(t *testing.T) {
	for _, n := range []int{64, 256, 512} {
		idx := nearestIndex(n, 240)
		textbook := 0
		for y, i := range idx {
			if j := int((float64(y) + 0.5) * float64(n) / 240); j != i {
				textbook++
			}
		}
		if textbook == 0 {
			t.Errorf("%d → 240: no row differs from the textbook formula; the test cannot tell them apart", n)
		}
	}
}

// JPEGs decode to PIL's pixels exactly: colour with every chroma
// subsampling, progressive, odd sizes, grey, CMYK (Adobe, inverted), and
// restart markers. Go's image/jpeg is measured beside, for the record.
func TestJPEGMatchesPIL(t *testing.T) {
	dir := t.TempDir()
	runPIL(t, dir, `
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(5)
h, w = 61, 97
y, x = np.mgrid[0:h, 0:w]
base = np.dstack([(x * 255 // w) ^ (y * 7), rng.integers(0, 256, (h, w)), (x + y) * 3]).astype(np.uint8)
rgb = Image.fromarray(base)
cases = {
    "c444": dict(quality=90, subsampling=0),
    "c422": dict(quality=90, subsampling=1),
    "c420": dict(quality=75, subsampling=2),
    "prog": dict(quality=85, progressive=True),
    "q30": dict(quality=30),
}
for name, kw in cases.items():
    rgb.save(f"{d}/{name}.jpg", **kw)
rgb.convert("L").save(f"{d}/grey.jpg", quality=90)
rgb.convert("CMYK").save(f"{d}/cmyk.jpg", quality=90)
Image.fromarray(np.tile(base, (3, 3, 1))).save(f"{d}/big.jpg", quality=80)
for name in list(cases) + ["grey", "cmyk", "big"]:
    np.asarray(Image.open(f"{d}/{name}.jpg").convert("RGB")).tofile(f"{d}/{name}.raw")
`)
	for _, name := range []string{"c444", "c422", "c420", "prog", "q30", "grey", "cmyk", "big"} {
		path := filepath.Join(dir, name+".jpg")
		want, err := os.ReadFile(filepath.Join(dir, name+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Pix) != len(want) {
			t.Fatalf("%s: %dx%d, %d bytes from PIL", name, got.W, got.H, len(want))
		}
		if d := maxDiff(got.Pix, want); d != 0 {
			t.Errorf("%s: differs from PIL by up to %d/255", name, d)
		}
		raw, _ := os.ReadFile(path)
		if g, err := jpeg.Decode(bytes.NewReader(raw)); err == nil {
			t.Logf("%s: Go's image/jpeg differs from PIL by up to %d/255", name, maxDiff(FromImage(g).Pix, want))
		}
	}
}

func maxDiff(a, b []byte) int {
	m := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		m = max(m, d, -d)
	}
	return m
}

// A cut or damaged JPEG is an error naming the file, not grey pixels.
func TestBadJPEG(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testImage(64, 48), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	header := append([]byte(nil), full[:600]...)
	garbled := append([]byte(nil), full...)
	for i := 200; i < 260; i++ {
		garbled[i] = 0xff
	}
	for name, data := range map[string][]byte{
		"cut.jpg":     full[:len(full)/2],
		"header.jpg":  header,
		"garbled.jpg": garbled,
		"magic.jpg":   {0xff, 0xd8, 0xff},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want a one-line error naming the file, got %v", name, err)
		}
	}
	p := filepath.Join(dir, "ok.jpg")
	os.WriteFile(p, full, 0o644)
	if m, err := Load(p); err != nil || m.W != 64 || m.H != 48 {
		t.Errorf("the whole file: %v", err)
	}
}

// TestDamagedJPEG: a JPEG whose compressed data is cut short before EOI,
// whose header claims more rows than its data holds, or whose data holds
// an impossible Huffman code is refused by default (libjpeg and PIL would
// fill in grey and score a partly invented image); with
// Limits.DamagedJPEG it decodes as PIL does, byte for byte. A warning that
// loses nothing (extraneous bytes before a marker) never refuses a file; a
// file without its EOI is truncated, with or without DamagedJPEG, as PIL
// says.
func TestDamagedJPEG(t *testing.T) {
	dir := t.TempDir()
	runPIL(t, dir, `
import sys, struct
import numpy as np
from PIL import Image
d = sys.argv[1]
h, w = 64, 80
y, x = np.mgrid[0:h, 0:w]
base = np.dstack([x * 3, y * 4, (x * y) % 256]).astype(np.uint8)
for name, kw in {"base": dict(quality=90), "prog": dict(quality=90, progressive=True)}.items():
    Image.fromarray(base).save(f"{d}/{name}.jpg", **kw)
data = open(f"{d}/base.jpg", "rb").read()
sos = data.index(b"\xff\xda")
start = sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]
end = len(data) - 2
sof = data.index(b"\xff\xc0")
pdata = open(f"{d}/prog.jpg", "rb").read()
last = pdata.rindex(b"\xff\xda")
variants = {
    "cut": data[:start + (end - start) // 2] + b"\xff\xd9",
    "tall": data[:sof + 5] + struct.pack(">H", 96) + data[sof + 7:],
    "garbled": data[:start + 40] + b"\xff\x00" * 30 + data[start + 100:],
    "progcut": pdata[:last + 40] + b"\xff\xd9",
    "zeroed": data[:start] + bytes(end - start) + data[end:],
    "noeoi": data[:end],  # libjpeg reads ahead past the last row: truncated
}
for name, v in variants.items():
    open(f"{d}/{name}.jpg", "wb").write(v)
    try:
        np.asarray(Image.open(f"{d}/{name}.jpg").convert("RGB")).tofile(f"{d}/{name}.raw")
    except OSError as e:
        open(f"{d}/{name}.err", "w").write(str(e))
`)
	for _, c := range []struct {
		name    string
		damaged bool
	}{{"cut", true}, {"tall", true}, {"garbled", true}, {"progcut", true}, {"zeroed", false}, {"noeoi", true}} {
		path := filepath.Join(dir, c.name+".jpg")
		if c.name == "noeoi" { // refused as PIL refuses it
			pilErr, _ := os.ReadFile(filepath.Join(dir, c.name+".err"))
			_, err := LoadLimit(path, Limits{DamagedJPEG: true})
			if !strings.Contains(string(pilErr), "truncated") || err == nil || !strings.Contains(err.Error(), "truncated image") {
				t.Errorf("noeoi: PIL %q, ours %v", pilErr, err)
			}
			continue
		}
		want, err := os.ReadFile(filepath.Join(dir, c.name+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(path)
		if c.damaged && (err == nil || !strings.Contains(err.Error(), path+": damaged JPEG (Corrupt JPEG data") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: want a damaged-JPEG error naming the file, got %v", c.name, err)
		}
		if !c.damaged && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		got, err := LoadLimit(path, Limits{DamagedJPEG: true})
		if err != nil {
			t.Errorf("%s with DamagedJPEG: %v", c.name, err)
			continue
		}
		if len(got.Pix) != len(want) {
			t.Errorf("%s: %dx%d, %d bytes from PIL", c.name, got.W, got.H, len(want))
		} else if d := maxDiff(got.Pix, want); d != 0 {
			t.Errorf("%s with DamagedJPEG: differs from PIL by up to %d/255", c.name, d)
		}
	}
}
